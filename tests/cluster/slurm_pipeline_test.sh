#!/usr/bin/env bash
# A real one-node Slurm cluster on localhost, the shrunk sinusoid pipeline run through the SLURM profile, and its
# results compared with a local run. Every daemon this script starts is stopped by its PID on exit.
# Needs root and apt (Debian's slurm-wlm and munge); otherwise it prints why and exits 0 (skipped).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
if [ "$(id -u)" != 0 ]; then echo "SKIPPED cluster test: needs root to run munged, slurmctld and slurmd"; exit 0; fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  if command -v apt-get >/dev/null && timeout 600 apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null 2>&1 \
     || { timeout 300 apt-get update >/dev/null 2>&1 && timeout 600 apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null 2>&1; }; then
    echo "installed slurm-wlm and munge"
  else
    echo "SKIPPED cluster test: slurm-wlm and munge are not installed and apt-get could not install them"; exit 0
  fi
fi
python -c "import snakemake_executor_plugin_slurm" 2>/dev/null || pip install -q snakemake-executor-plugin-slurm
WORK="$(mktemp -d /tmp/kdreg-slurm.XXXXXX)"
chmod 755 "$WORK"  # munged runs as the munge user and must reach its files
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
start=$(date +%s)

# munge: a key, the daemon as the munge user
mkdir -p "$WORK/munge" /run/munge
chown munge:munge "$WORK/munge" /run/munge
dd if=/dev/urandom of="$WORK/munge/munge.key" bs=1024 count=1 status=none
chown munge:munge "$WORK/munge/munge.key"; chmod 400 "$WORK/munge/munge.key"
sudo_munge() { runuser -u munge -- "$@"; }
sudo_munge munged --key-file="$WORK/munge/munge.key" --socket=/run/munge/munge.socket.2 \
  --pid-file="$WORK/munge/munged.pid" --log-file="$WORK/munge/munged.log" --seed-file="$WORK/munge/seed"
sleep 1; PIDS+=("$(cat "$WORK/munge/munged.pid")")

# slurm.conf: one node within what slurmd -C reports
CPUS=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' | head -1)
MEM=$(( $(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -1) * 8 / 10 ))
mkdir -p "$WORK/slurm/state" "$WORK/slurm/spool" /etc/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=kdreg
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$WORK/slurm/state
SlurmdSpoolDir=$WORK/slurm/spool
SlurmctldPidFile=$WORK/slurm/slurmctld.pid
SlurmdPidFile=$WORK/slurm/slurmd.pid
SlurmctldLogFile=$WORK/slurm/slurmctld.log
SlurmdLogFile=$WORK/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
NodeName=localhost CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld; slurmd
sleep 3
PIDS+=("$(cat "$WORK/slurm/slurmctld.pid")" "$(cat "$WORK/slurm/slurmd.pid")")
for i in $(seq 30); do sinfo -h -o %T 2>/dev/null | grep -q idle && break; sleep 1; done
sinfo

# the shrunk pipeline, once through Slurm and once locally
cd "$ROOT"
python - "$WORK" <<'PY'
import sys, yaml
sys.path.insert(0, "tests")
from conftest import shrink
params = shrink(yaml.safe_load(open("params.yaml")))
for d in ("cluster", "local"):
    import os
    os.makedirs(f"{sys.argv[1]}/{d}", exist_ok=True)
    yaml.safe_dump(params, open(f"{sys.argv[1]}/{d}/params.yaml", "w"))
PY
snakemake -s "$ROOT/Snakefile" --directory "$WORK/cluster" --profile "$ROOT/workflow/profiles/slurm" \
  --slurm-logdir "$WORK/cluster/slurm-logs" all > "$WORK/cluster.log" 2>&1 || { tail -50 "$WORK/cluster.log"; exit 1; }
grep -E "Job [0-9]+ has been submitted with SLURM jobid|SLURM run ID" "$WORK/cluster.log" | head -20
echo "slurm jobs submitted: $(grep -c 'has been submitted with SLURM jobid' "$WORK/cluster.log")"
snakemake -s "$ROOT/Snakefile" --directory "$WORK/local" --cores 2 all > "$WORK/local.log" 2>&1
for f in metrics/sinusoid.json tables/sinusoid.md evaluation/sinusoid_runs.csv; do
  cmp "$WORK/cluster/results/$f" "$WORK/local/results/$f"
done
echo "cluster results equal the local run's ($(( $(date +%s) - start )) s)"
