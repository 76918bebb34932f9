#!/usr/bin/env bash
# The sweep's slurm executor on a real Slurm: starts a single-node cluster on this machine (Debian's slurmctld,
# slurmd and munge, installed with apt-get when absent; run as root, no systemd needed), then
#   1. submits a sweep of the tiny example on the CPU (two variants of the tiny dataset, class folders and a CoOp
#      split file with the validation and test splits swapped, x two seeds) as one job array, waits for it, and
#      checks that every cell finished and that `report` lays the cells out; then a plan that asks for a GPU: it is
#      refused with --device cpu, and without --device its task holds the stand-in GPU and runs its cell with
#      --device cuda:0 (which, with no NVIDIA driver here, fails saying so);
#   2. submits a one-cell sweep of a longer run, requeues its task while it runs (killing it mid-run), and checks
#      that the requeued task resumed the cell and ended with the history of an uninterrupted run;
#   3. checks that a task asking for more than the node has is refused at submission.
# Everything lives under one temporary folder, and the cluster is shut down on any exit.
#
#   bash scripts/slurm-test.sh [BINARY]     (default: target/release/glov-cuda)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
bin=$(realpath "${1:-target/release/glov-cuda}")
started=$(date +%s)
patience=180

fail() {
  echo "slurm-test: FAILED: $*" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || fail "run as root (it starts the Slurm and munge daemons)"
[ -x "$bin" ] || fail "no binary $bin (cargo build --release first)"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null ||
  ! command -v munged >/dev/null; then
  echo "slurm-test: installing slurm-wlm and munge"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

work=$(mktemp -d /tmp/glov-slurm-test.XXXXXX)
chmod 755 "$work"
export SLURM_CONF=$work/etc/slurm.conf
started_munged=0

shutdown() {
  status=$?
  set +e
  if [ "$status" != 0 ]; then
    echo "slurm-test: the cluster's logs:" >&2
    tail -n 30 "$work"/log/*.log >&2
  fi
  scancel --quiet --user=root 2>/dev/null
  scontrol shutdown 2>/dev/null
  for daemon in slurmctld slurmd; do
    pid=$(cat "$work/$daemon.pid" 2>/dev/null)
    for _ in $(seq 50); do
      [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  done
  if [ "$started_munged" = 1 ]; then
    kill "$(cat /run/munge/munged.pid)" 2>/dev/null
  fi
  rm -rf "$work"
  exit "$status"
}
trap shutdown EXIT

# munge: the daemon Slurm authenticates with, as the munge user (the package made the key).
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  mkdir -p /run/munge
  chown munge:munge /run/munge
  [ -s /etc/munge/munge.key ] || runuser -u munge -- mungekey --create
  runuser -u munge -- munged
  started_munged=1
  for _ in $(seq 50); do
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break
    sleep 0.1
  done
fi

# One node with a stand-in GPU: a GPU declared without File= is dropped and the node drains, so File=/dev/null.
# No cgroups (linuxproc, task/none), no accounting; EnforcePartLimits=ALL refuses a task the node cannot hold
# instead of leaving it pending forever.
host=$(hostname -s)
mkdir -p "$work/etc" "$work/state" "$work/spool" "$work/log"
cat >"$SLURM_CONF" <<EOF
ClusterName=glovtest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
GresTypes=gpu
EnforcePartLimits=ALL
ReturnToService=2
MpiDefault=none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=1024 Gres=gpu:1 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
echo "NodeName=$host Name=gpu File=/dev/null" >"$work/etc/gres.conf"
echo "slurm-test: $(slurmctld -V), starting the cluster"
slurmctld
slurmd
for i in $(seq 100); do
  [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && break
  [ "$i" = 100 ] && fail "the node did not become idle: $(sinfo 2>&1)"
  sleep 0.2
done
echo "slurm-test: cluster up after $(($(date +%s) - started)) s"

# Waits until job $1 has left the queue.
wait_for_job() {
  local start
  start=$(date +%s)
  while [ -n "$(squeue -h -j "$1" -o %i 2>/dev/null)" ]; do
    [ $(($(date +%s) - start)) -lt $patience ] || fail "job $1 still queued after $patience s: $(squeue -r -j "$1")"
    sleep 0.5
  done
}

# Completed steps in a run directory's state.json (0 before there is one).
completed_steps() {
  sed -n 's/.*"completed_steps":\([0-9]*\).*/\1/p' "$1/state.json" 2>/dev/null || true
}

# The tiny dataset's second variant: a CoOp split file listing its images with val and test swapped.
split_list() {
  local split=$1 label=0 first=1 class file
  for class in $(ls "$repo/examples/tiny-dataset/train"); do
    for file in $(ls "$repo/examples/tiny-dataset/$split/$class"); do
      [ $first = 1 ] || printf ','
      first=0
      printf '["%s/%s/%s", %d, "%s"]' "$split" "$class" "$file" "$label" "${class//_/ }"
    done
    label=$((label + 1))
  done
}
printf '{"train": [%s], "val": [%s], "test": [%s]}\n' "$(split_list train)" "$(split_list test)" \
  "$(split_list val)" >"$work/swapped_split.json"

common="llm = \"$repo/examples/tiny-llm\"
clip = \"$repo/tests/fixtures/clip-tiny-quickgelu\"
samples = 8
alphas = [1.0, 0.5, 0.0]
max-new-tokens = 24
layer = 2
no-cache = true"

cat >"$work/plan.toml" <<EOF
$common
steps = 4

[grid]
seed = [1, 2]

[[datasets]]
id = "folders"
dataset-name = "tiny shapes"
dataset = "$repo/examples/tiny-dataset"
description = "Small synthetic pictures of coloured shapes and stripes on plain backgrounds."

[[datasets]]
id = "swapped"
dataset-name = "tiny shapes, swapped splits"
dataset = "$repo/examples/tiny-dataset"
split-file = "$work/swapped_split.json"
description = "Small synthetic pictures of coloured shapes and stripes on plain backgrounds."

[slurm]
cpus = 1
mem = "200M"
time = "00:10:00"
EOF

# 1. The sweep as a job array.
out=$work/sweep
array_start=$(date +%s)
submitted=$("$bin" --device cpu sweep "$work/plan.toml" --out "$out" --executor slurm)
echo "$submitted"
job=$(sed -n 's/^submitted job \([0-9]*\):.*/\1/p' <<<"$submitted")
[ -n "$job" ] || fail "no job id in: $submitted"
grep -q "array 0-3 (4 of 4 cells, on cpu)" <<<"$submitted" || fail "not one task per cell: $submitted"
wait_for_job "$job"
echo "slurm-test: the 4-task array ran in $(($(date +%s) - array_start)) s"
status=$("$bin" sweep --status --out "$out")
echo "$status"
[ "$(grep -c ' finished ' <<<"$status")" = 4 ] || fail "not every cell finished"
grep -q "4 cells in $out: 4 finished" <<<"$status" || fail "status summary"
for cell in folders/seed1 folders/seed2 swapped/seed1 swapped/seed2; do
  grep -q "slurm job ${job}_[0-3] (restart 0) on .*: .*--device.*cpu.* optimize --config" "$out/$cell/optimize.log" ||
    fail "$cell: no task on the CPU in its log: $(cat "$out/$cell/optimize.log")"
done
report=$("$bin" report "$out")
echo "$report"
grep -q "2 dataset(s), 4 run(s), seeds 1, 2" <<<"$report" || fail "the report does not hold 2 datasets x 2 seeds"
for row in "tiny shapes 2 " "tiny shapes, swapped splits 2 " "mean 4 "; do
  [ "$(tr -s ' ' <<<"$report" | grep -c "^$row")" = 1 ] || fail "no report row '$row'"
done
grep -q "left out" <<<"$report" && fail "the report left runs out"

# A plan that asks for a GPU runs its cells on CUDA, and is refused with --device cpu.
cat >"$work/gpu.toml" <<EOF
$common
steps = 1

[[datasets]]
id = "gpu"
dataset-name = "tiny shapes"
dataset = "$repo/examples/tiny-dataset"
description = "Small synthetic pictures of coloured shapes and stripes on plain backgrounds."

[slurm]
gpus = 1
cpus = 1
mem = "200M"
EOF
gpu_out=$work/gpu-sweep
if "$bin" --device cpu sweep "$work/gpu.toml" --out "$gpu_out" --executor slurm 2>"$work/cpu-refused.txt"; then
  fail "a plan asking for a GPU was submitted to run on the CPU"
fi
grep -q "asks Slurm for GPUs" "$work/cpu-refused.txt" || fail "$(cat "$work/cpu-refused.txt")"
submitted=$("$bin" sweep "$work/gpu.toml" --out "$gpu_out" --executor slurm)
echo "$submitted"
grep -q "(1 of 1 cells, on cuda:0)" <<<"$submitted" || fail "the GPU plan's cells are not on CUDA: $submitted"
job=$(sed -n 's/^submitted job \([0-9]*\):.*/\1/p' <<<"$submitted")
[ -n "$job" ] || fail "no job id in: $submitted"
wait_for_job "$job"
log=$gpu_out/gpu/optimize.log
grep -q "slurm job ${job}_0 (restart 0) on .*CUDA_VISIBLE_DEVICES=0: .*--device.*cuda:0.* optimize --config" "$log" ||
  fail "no task with the stand-in GPU running on CUDA in its log: $(cat "$log")"
if ! grep -q "no NVIDIA driver" "$log"; then
  [ -e /dev/nvidia0 ] || fail "the CUDA cell did not stop for want of a driver: $(cat "$log")"
fi
echo "slurm-test: the GPU plan ran its cell on cuda:0 with the stand-in GPU"

# 2. A task requeued mid-run (Slurm kills it and starts it again) resumes its cell.
cat >"$work/long.toml" <<EOF
$common
steps = 60
seed = 5

[[datasets]]
id = "long"
dataset-name = "tiny shapes"
dataset = "$repo/examples/tiny-dataset"
description = "Small synthetic pictures of coloured shapes and stripes on plain backgrounds."

[slurm]
cpus = 1
mem = "200M"
EOF
long=$work/long-sweep
submitted=$("$bin" --device cpu sweep "$work/long.toml" --out "$long" --executor slurm)
job=$(sed -n 's/^submitted job \([0-9]*\):.*/\1/p' <<<"$submitted")
[ -n "$job" ] || fail "no job id in: $submitted"
cell=$long/long
start=$(date +%s)
until [ "$(completed_steps "$cell")" -ge 3 ] 2>/dev/null; do
  [ $(($(date +%s) - start)) -lt $patience ] || fail "the long cell did not reach step 3"
  sleep 0.05
done
scontrol requeue "${job}_0"
until squeue -h -j "$job" -o %T | grep -q PENDING; do
  [ $(($(date +%s) - start)) -lt $patience ] || fail "the requeued task is not pending: $(squeue -r -j "$job")"
  sleep 0.1
done
killed_at=$(completed_steps "$cell")
echo "slurm-test: requeued the task after $killed_at of 60 steps"
[ "$killed_at" -lt 60 ] || fail "the task finished before it was requeued"
# A requeued job waits for its credential to expire (two minutes) before it may start again; start it now.
scontrol update JobId="${job}_0" StartTime=now
wait_for_job "$job"
"$bin" sweep --status --out "$long" | grep -q "^long  *finished  *60/60" || fail "the requeued cell did not finish"
grep -q "slurm job ${job}_0 (restart 1) on .*optimize --config $cell/cell.toml --resume" "$cell/optimize.log" ||
  fail "the requeued task did not resume its cell: $(cat "$cell/optimize.log")"
"$bin" --device cpu optimize --config "$cell/cell.toml" --out "$work/uninterrupted" -q >/dev/null
cmp "$cell/history.jsonl" "$work/uninterrupted/history.jsonl" || fail "the requeued run's history differs"
cmp "$cell/results.json" "$work/uninterrupted/results.json" || fail "the requeued run's results differ"

echo "slurm-test: requeue and resume checked after $(($(date +%s) - start)) s"

# 3. More than the node has is refused at once.
if sbatch --gres=gpu:2 --wrap=true 2>"$work/refused.txt"; then
  fail "a task asking for 2 GPUs of a node with 1 was accepted"
fi
grep -q "Requested node configuration is not available" "$work/refused.txt" || fail "$(cat "$work/refused.txt")"

echo "slurm-test: passed in $(($(date +%s) - started)) s"
