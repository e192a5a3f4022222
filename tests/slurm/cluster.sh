#!/usr/bin/env bash
# A one-node Slurm cluster on localhost for the `--engine slurm` test (Debian's slurmctld,
# slurmd and munge). `cluster.sh start DIR` writes DIR/slurm.conf, starts munged, slurmctld
# and slurmd, waits until the node takes jobs and prints the SLURM_CONF to export;
# `cluster.sh stop DIR` stops them. Everything but munge's socket lives under DIR.
set -euo pipefail

command="${1:?usage: cluster.sh start|stop DIR}"
dir="$(mkdir -p "${2:?usage: cluster.sh start|stop DIR}" && cd "$2" && pwd)"
conf="$dir/slurm.conf"
export SLURM_CONF="$conf"

stop() {
    local pids=()
    for daemon in slurmd slurmctld; do
        [[ -f "$dir/$daemon.pid" ]] && pids+=("$(cat "$dir/$daemon.pid")")
    done
    if [[ -f "$dir/munged.started" ]]; then
        pids+=($(pgrep -x munged || true))
        rm -f "$dir/munged.started"
    fi
    ((${#pids[@]})) || return 0
    kill "${pids[@]}" 2>/dev/null || true
    # The daemons shut down in a few seconds; whatever is left after 15 is killed.
    for _ in $(seq 30); do
        kill -0 "${pids[@]}" 2>/dev/null || return 0
        sleep 0.5
    done
    kill -9 "${pids[@]}" 2>/dev/null || true
}

start() {
    local user cpus memory_mb
    user="$(id -un)"
    cpus="$(nproc)"
    memory_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
    mkdir -p "$dir/spool/ctld" "$dir/spool/d" "$dir/log"

    # munge authenticates every Slurm message; Debian's package leaves a key behind.
    if ! pgrep -x munged >/dev/null; then
        [[ -f /etc/munge/munge.key ]] || mungekey --create --keyfile /etc/munge/munge.key
        mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
        if [[ $(id -u) -eq 0 ]]; then
            runuser -u munge -- munged
        else
            munged
        fi
        touch "$dir/munged.started"
    fi

    # No accounting daemon, no cgroups: the smallest configuration that runs job arrays.
    cat > "$conf" <<CONF
ClusterName=sense-test
SlurmctldHost=localhost
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/spool/ctld
SlurmdSpoolDir=$dir/spool/d
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
MinJobAge=600
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
    slurmctld
    slurmd -N localhost
    for _ in $(seq 60); do
        if sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
            echo "export SLURM_CONF=$conf"
            return 0
        fi
        sleep 1
    done
    echo "the one-node cluster did not come up; logs in $dir/log" >&2
    sinfo >&2 || true
    tail -20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
    stop
    return 1
}

case "$command" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: cluster.sh start|stop DIR" >&2; exit 2 ;;
esac
