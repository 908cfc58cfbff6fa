#!/usr/bin/env bash
# A single-node SLURM cluster on localhost, for testing profiles/slurm for real.
#
#   tests/slurm/local_cluster.sh install   # apt-get install slurmctld slurmd slurm-client munge
#   tests/slurm/local_cluster.sh start     # (install if needed,) configure, start, wait until the node is idle
#   tests/slurm/local_cluster.sh status    # exit 0 when the node accepts jobs
#   tests/slurm/local_cluster.sh stop      # stop slurmd, slurmctld and munged
#
# Every command is idempotent: `start` on a running cluster only checks it. Needs root (CI runs as
# root). The node gets the machine's real CPUs and memory (`slurmd -C`). No slurmdbd: accounting is
# off, so job status comes from squeue (MinJobAge keeps finished jobs visible there), and memory
# limits are enforced by polling (jobacct_gather/linux + OverMemoryKill) rather than cgroups, which
# containers often do not delegate.
set -euo pipefail

STATE_DIR=${SCDIVA_SLURM_DIR:-/var/lib/scdiva-slurm}
SLURM_CONF=/etc/slurm/slurm.conf
MARKER="# written by scdiva tests/slurm/local_cluster.sh"
NODE=localhost
PARTITION=${SCDIVA_SLURM_TEST_PARTITION:-debug}
START_TIMEOUT_S=${SCDIVA_SLURM_START_TIMEOUT_S:-60}
# GPUs: the node advertises the machine's NVIDIA devices. SCDIVA_SLURM_PLACEHOLDER_GPU=1 on a machine
# without one adds a placeholder GPU (device file /dev/null) that SLURM schedules like a real one, so
# the tests can check that `--gpus=1` jobs get a GPU allocation (SLURM_JOB_GPUS) and others do not.
PLACEHOLDER_GPU=${SCDIVA_SLURM_PLACEHOLDER_GPU:-0}

log() { echo "[local_cluster] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

require_root() {
    [[ $(id -u) -eq 0 ]] || die "needs root (it installs packages and starts slurmctld/slurmd as root)."
}

install_packages() {
    require_root
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v sbatch >/dev/null && command -v munged >/dev/null; then
        return 0
    fi
    log "installing slurmctld slurmd slurm-client munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
}

node_hardware() {
    # `slurmd -C` prints e.g. "NodeName=vm CPUs=2 Boards=1 ... RealMemory=24105"; keep everything but the
    # name and give the OS 5% of the memory back, so a job asking for "all" memory still fits.
    local line cpus_etc mem
    line=$(slurmd -C | head -n 1)
    cpus_etc=$(sed -e 's/^NodeName=[^ ]* //' -e 's/ RealMemory=[0-9]*//' <<<"$line")
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$line")
    echo "$cpus_etc RealMemory=$((mem * 95 / 100))"
}

# Writes slurm.conf (and gres.conf); returns 0 when they changed, 1 when they were already up to date.
write_config() {
    if [[ -f $SLURM_CONF ]] && ! grep -qF "$MARKER" "$SLURM_CONF"; then
        die "$SLURM_CONF exists and was not written by this script; refusing to overwrite a real cluster's config."
    fi
    mkdir -p "$STATE_DIR"/{state,spool,log} /etc/slurm
    local hardware gres_types="" node_gres=""
    hardware=$(node_hardware)
    local gpu_devices=(/dev/nvidia[0-9]*)
    [[ -e ${gpu_devices[0]} ]] || gpu_devices=()
    if ((${#gpu_devices[@]} == 0)) && [[ $PLACEHOLDER_GPU == 1 ]]; then gpu_devices=(/dev/null); fi
    if ((${#gpu_devices[@]} > 0)); then
        gres_types="GresTypes=gpu"
        node_gres="Gres=gpu:${#gpu_devices[@]}"
        printf "NodeName=$NODE Name=gpu File=%s\n" "${gpu_devices[@]}" >"$STATE_DIR/gres.conf.new"
    else
        : >"$STATE_DIR/gres.conf.new"
    fi
    cat >"$SLURM_CONF.tmp" <<EOF
$MARKER
ClusterName=scdiva-local
$gres_types
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE_DIR/state
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# no cgroups: plain process tracking, memory limits enforced by polling the job's RSS every second
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
# no slurmdbd: nothing to account to; squeue keeps finished jobs for MinJobAge seconds, long enough
# for Snakemake's status checks (the plugin wants >= 3x its first status-check delay)
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 $hardware $node_gres State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    if cmp -s "$SLURM_CONF.tmp" "$SLURM_CONF" && cmp -s "$STATE_DIR/gres.conf.new" "$STATE_DIR/gres.conf"; then
        rm -f "$SLURM_CONF.tmp" "$STATE_DIR/gres.conf.new"
        return 1
    fi
    mv "$STATE_DIR/gres.conf.new" "$STATE_DIR/gres.conf"
    if [[ -s $STATE_DIR/gres.conf ]]; then cp "$STATE_DIR/gres.conf" /etc/slurm/gres.conf; else rm -f /etc/slurm/gres.conf; fi
    mv "$SLURM_CONF.tmp" "$SLURM_CONF"
    return 0
}

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
    [[ -s /etc/munge/munge.key ]] || { mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
        || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; }
    chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge
    chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge && chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged --force
    for _ in $(seq 20); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "munged did not come up (see /var/log/munge/munged.log)"
}

node_state() { sinfo --noheader --nodes="$NODE" --format=%T 2>/dev/null | head -n 1; }

cluster_ready() {
    local state
    state=$(node_state) || return 1
    [[ $state == idle* || $state == mixed* || $state == allocated* ]]
}

start() {
    require_root
    install_packages
    if write_config; then
        # a new or changed config (e.g. other hardware, a GPU added) needs fresh daemons
        stop_daemon slurmd "$STATE_DIR/slurmd.pid"
        stop_daemon slurmctld "$STATE_DIR/slurmctld.pid"
    elif cluster_ready; then
        log "already running: node $NODE is $(node_state)"
        return 0
    fi
    start_munge
    pid_alive "$STATE_DIR/slurmctld.pid" || slurmctld
    pid_alive "$STATE_DIR/slurmd.pid" || slurmd -N "$NODE"
    local deadline=$((SECONDS + START_TIMEOUT_S)) state
    while ((SECONDS < deadline)); do
        state=$(node_state || true)
        case $state in
            idle* | mixed* | allocated*)
                log "up: node $NODE is $state ($(sinfo --noheader --format='%c CPUs, %m MB'))"
                return 0 ;;
            down* | drain*)
                # a node that was down before a restart comes back only when told so
                scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
        esac
        sleep 1
    done
    log "node $NODE did not become idle within ${START_TIMEOUT_S}s (state: '${state:-none}'); logs:"
    tail -n 20 "$STATE_DIR"/log/*.log >&2 || true
    exit 1
}

stop_daemon() {
    local name=$1 pidfile=$2 pid
    pid_alive "$pidfile" || return 0
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
    log "$name ($pid) did not stop within 15 s; sending SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
}

stop() {
    require_root
    # cancel what is still queued so no job outlives the cluster
    if cluster_ready; then scancel --full --partition="$PARTITION" 2>/dev/null || true; fi
    stop_daemon slurmd "$STATE_DIR/slurmd.pid"
    stop_daemon slurmctld "$STATE_DIR/slurmctld.pid"
    stop_daemon munged /run/munge/munged.pid
    log "stopped"
}

status() {
    if cluster_ready; then
        sinfo
        return 0
    fi
    log "not running (node state: '$(node_state || true)')"
    return 1
}

case ${1:-} in
    install) install_packages ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 {install|start|stop|status}" >&2; exit 2 ;;
esac
