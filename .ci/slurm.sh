#!/usr/bin/env bash
# A single-node SLURM from Debian's packages, for CI: `.ci/slurm.sh up` / `.ci/slurm.sh down`.
#   up:   installs slurmctld slurmd slurm-client munge (only when missing; needs root + apt-get), starts
#         munged as the munge user (unless one runs), writes /etc/slurm/slurm.conf, starts slurmctld
#         and `slurmd -N localhost`, waits until `sinfo` shows the node idle. Idempotent: a running CI
#         cluster is left as it is. About 1 s once the packages are installed (+5-15 s for apt-get).
#   down: stops slurmd, slurmctld and (if `up` started it) munged by their pid files.
#   status: exit 0 when the CI cluster answers, else 1.
# State, spool, logs and pid files live in $SLURM_CI_DIR (default /tmp/slurm-ci). The config must be
# /etc/slurm/slurm.conf (SLURM_CONF elsewhere does not reach the jobs: the slurm-jobstep plugin drops
# SLURM_* variables before its inner srun); an existing slurm.conf not written by this script is never
# overwritten (exit 77), and `down` removes ours.
# No accounting database: `sacct` fails, so snakemake must use `--slurm-status-command squeue`
# (.ci/slurm-profile/config.yaml). Exit codes: 0 ok, 1 failed, 77 SLURM cannot run here (not root,
# packages missing and not installable, or another SLURM already runs on this machine).
set -euo pipefail

SLURM_CI_DIR=${SLURM_CI_DIR:-/tmp/slurm-ci}
CONF=/etc/slurm/slurm.conf
MARK="# Written by .ci/slurm.sh"
MUNGE_PID=/run/munge/munged.pid
MUNGE_OURS=$SLURM_CI_DIR/run/munged.started-by-us
CTLD_PID=$SLURM_CI_DIR/run/slurmctld.pid
SLURMD_PID=$SLURM_CI_DIR/run/slurmd.pid
PACKAGES=(slurmctld slurmd slurm-client munge)

log() { echo "slurm.sh: $*" >&2; }

cannot() { log "cannot run SLURM on this machine: $*"; exit 77; }

ours() { [[ -f $CONF ]] && head -n 1 "$CONF" | grep -qF "$MARK"; }

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

installed() {
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
    done
}

install_packages() {
    installed && return 0
    [[ $(id -u) == 0 ]] || cannot "not root, and ${PACKAGES[*]} are not all installed"
    command -v apt-get >/dev/null || cannot "no apt-get, and ${PACKAGES[*]} are not all installed"
    log "installing ${PACKAGES[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # the package lists may be stale or absent on a fresh machine: update once, then install
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null; } \
        || cannot "apt-get install ${PACKAGES[*]} failed"
}

write_conf() {
    local cpus mem_kb real_mb
    cpus=$(nproc)
    mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    real_mb=$(( mem_kb / 1024 - 1024 ))       # MemTotal - 1 GB for the OS and the daemons
    mkdir -p "$SLURM_CI_DIR"/{state,spool,log,run}
    mkdir -p /etc/slurm
    cat > "$CONF" <<EOF
$MARK (single-node CI cluster, state in $SLURM_CI_DIR). Removed by: .ci/slurm.sh down
ClusterName=ci
SlurmctldHost=localhost
AuthType=auth/munge
SlurmUser=root
StateSaveLocation=$SLURM_CI_DIR/state
SlurmdSpoolDir=$SLURM_CI_DIR/spool
SlurmctldLogFile=$SLURM_CI_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM_CI_DIR/log/slurmd.log
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
MinJobAge=3600
AccountingStorageType=accounting_storage/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mb
PartitionName=debug Nodes=ALL Default=YES State=UP
EOF
}

node_idle() { sinfo -h -N -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; }

up() {
    local t0=$SECONDS
    if alive "$CTLD_PID" && alive "$SLURMD_PID" && node_idle; then
        log "already up ($SLURM_CI_DIR)"; return 0
    fi
    install_packages
    [[ $(id -u) == 0 ]] || cannot "not root (slurmd must run as root)"
    if ! alive "$CTLD_PID" && { pgrep -x slurmctld || pgrep -x slurmd; } >/dev/null; then
        cannot "another slurmctld/slurmd runs on this machine; not starting a second one"
    fi
    if [[ -f $CONF ]] && ! ours; then
        cannot "$CONF exists and was not written by .ci/slurm.sh; not overwriting it"
    fi
    mkdir -p "$SLURM_CI_DIR/run"
    if ! alive "$MUNGE_PID"; then
        mkdir -p /run/munge && chown munge: /run/munge
        runuser -u munge -- /usr/sbin/munged
        touch "$MUNGE_OURS"
    fi
    if ! alive "$CTLD_PID"; then
        rm -rf "$SLURM_CI_DIR"/{state,spool}   # a fresh cluster: no jobs or node states of earlier runs
        write_conf
        slurmctld
    fi
    alive "$SLURMD_PID" || slurmd -N localhost
    local i
    for i in $(seq 1 120); do           # 60 s at most
        if node_idle; then
            log "up in $(( SECONDS - t0 )) s: $(sinfo -h -o '%P %t %c cpus %m MB')"; return 0
        fi
        # a node left DOWN by an earlier run on this state dir: bring it back
        (( i % 10 == 0 )) && scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true
        sleep 0.5
    done
    log "SLURM did not come up; logs in $SLURM_CI_DIR/log"
    tail -n 20 "$SLURM_CI_DIR"/log/*.log >&2 || true
    return 1
}

stop() {   # stop the daemon whose pid file is $1, wait until it is gone
    local pidfile=$1 pid i
    alive "$pidfile" || return 0
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
}

down() {
    stop "$SLURMD_PID"
    stop "$CTLD_PID"
    if [[ -f $MUNGE_OURS ]]; then stop "$MUNGE_PID"; rm -f "$MUNGE_OURS"; fi
    # without our config the slurm commands fail at once instead of looking for a controller
    if ours; then rm -f "$CONF"; fi
    log "down"
}

case ${1:-} in
    up) up ;;
    down) down ;;
    status) node_idle ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
