# Shared by the bench scripts that start daemons: sourced, not run.

# stop_pid PID: SIGTERM, up to 5 s for the process to go, then SIGKILL (a daemon that ignores
# TERM must not outlive the script's clean-up).
stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
