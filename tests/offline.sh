#!/bin/sh
# Run a command with the network cut off (loopback stays up), to prove the course needs no network
# after setup. Uses a Linux network namespace when the OS allows one; elsewhere it says so and runs
# the command as it is.
if unshare -rn true 2>/dev/null; then
  exec unshare -rn sh -c 'ip link set lo up 2>/dev/null || true; exec "$@"' sh "$@"
fi
echo "offline.sh: this OS gives no network namespace; running with the network." >&2
exec "$@"
