# Written by `python sweep.py ... --slurm DIR`: sourced by its jobs and by submit.sh.

# run_status RUN_DIR: the status in RUN_DIR/log.json (running, done, ...); empty without one
run_status() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["status"])' "$1/log.json" 2>/dev/null || true
}

finished() {
  case $(run_status "$1") in done|early_stopped) return 0 ;; *) return 1 ;; esac
}

# whole CKPT: whether torch.save's zip archive is intact (every member's CRC), without torch
whole() {
  python3 -c 'import sys, zipfile; sys.exit(zipfile.ZipFile(sys.argv[1]).testzip() is not None)' \
    "$1" 2>/dev/null
}

# SLURM's --signal=B:USR1 before the time limit: the run is asked to stop (SIGTERM: it writes
# ckpt.pt and exits) and the job requeued. SIGTERM (scancel; a pre-emption, which SLURM requeues
# itself) is passed on alike, with no requeue: a cancelled job must stay cancelled.
stop_signal='' run_pid=''
on_signal() {
  stop_signal=$1
  [ -z "$run_pid" ] || kill -TERM "$run_pid" 2>/dev/null || true
}
# srun does not take --cpus-per-task from the job (SLURM >= 22.05): a run's steps get the job's CPUs
[ -z "${SLURM_CPUS_PER_TASK:-}" ] || export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK

# run_resumable COMMAND...: a run of the sweep as sweep.py runs one. COMMAND is `... train.py ARGS
# --out_dir=RUN_DIR`; its output goes to RUN_DIR/train.txt. Nothing to do if the run finished; a
# run with a whole ckpt.pt (pre-empted, requeued, cut off by the time limit, failed) resumes from
# it; one without (or with a corrupt one, moved to ckpt.pt.corrupt) starts over.
run_resumable() {
  local dir=${!#} rc=0 n
  dir=${dir#--out_dir=}
  local cmd=("$@")
  case $(run_status "$dir") in
    done|early_stopped) echo "$dir finished: nothing to do"; return 0 ;;
  esac
  if [ -f "$dir/ckpt.pt" ] && ! whole "$dir/ckpt.pt"; then  # resuming it would fail every time
    mv -f "$dir/ckpt.pt" "$dir/ckpt.pt.corrupt"
    echo "$dir/ckpt.pt is truncated or corrupt: moved to ckpt.pt.corrupt, the run starts afresh" >&2
  fi
  if [ -f "$dir/ckpt.pt" ]; then  # the launcher, then train.py takes the rest from the checkpoint
    for ((n = 1; n <= $#; n++)); do [ "${!n}" = train.py ] && break; done
    cmd=("${@:1:n}" --init_from=resume "--out_dir=$dir")
  else
    rm -f "$dir/best.pt" "$dir/log.json"
  fi
  mkdir -p "$dir"
  echo "${cmd[*]}" >> "$dir/train.txt"
  # in the background, so that a signal to this shell is handled while the run runs; a trapped
  # signal cuts `wait` short, so it waits again until the run has exited (the traps are a job's:
  # submit.sh, which sources this file too, keeps the default ones)
  trap 'on_signal USR1' USR1
  trap 'on_signal TERM' TERM
  "${cmd[@]}" >> "$dir/train.txt" 2>&1 &
  run_pid=$!
  [ -z "$stop_signal" ] || kill -TERM "$run_pid"  # a signal that came before the run started
  while :; do
    rc=0
    wait "$run_pid" || rc=$?
    kill -0 "$run_pid" 2>/dev/null || break
  done
  run_pid=''
  finished "$dir" && return 0
  if [ "$stop_signal" = USR1 ] && [ -n "${SLURM_JOB_ID:-}" ]; then
    echo "$dir: stopped before the time limit with its ckpt.pt: requeueing job $SLURM_JOB_ID" >&2
    scontrol requeue "$SLURM_JOB_ID"
    return 0
  fi
  echo "error: $dir did not finish (exit $rc): see $dir/train.txt, then run submit.sh again" >&2
  return 1
}

# unfinished TASKS_FILE: the numbers of its lines whose run did not finish, as sbatch --array
# takes them (1-3,7); empty if every run finished
unfinished() {
  local i=0 line todo=()
  while IFS= read -r line; do
    i=$((i + 1))
    finished "${line##*--out_dir=}" || todo+=("$i")
  done < "$1"
  [ ${#todo[@]} -gt 0 ] || return 0
  printf '%s\n' "${todo[@]}" | awk 'NR == 1 {s = p = $1; next} $1 == p + 1 {p = $1; next}
    {printf "%s%s,", s, (p > s ? "-" p : ""); s = p = $1} END {printf "%s%s\n", s, (p > s ? "-" p : "")}'
}
