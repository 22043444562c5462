"""03FT-finetuning: supervised fine-tuning, LoRA and QLoRA, preference tuning (DPO), on top of 02PT."""
