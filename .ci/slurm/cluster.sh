#!/usr/bin/env bash
# A one-node SLURM cluster on this (Debian, root) machine, for CI: munge, MariaDB +
# slurmdbd (accounting: the executor plugin polls sacct), slurmctld, slurmd; partitions
# `cpu` and `gpu`, a `gpu:1` gres backed by /dev/null so GPU jobs schedule without a GPU.
#
#   .ci/slurm/cluster.sh start          install (first time), configure, start, wait
#   .ci/slurm/cluster.sh stop           stop every daemon it started, park the config
#   .ci/slurm/cluster.sh run CMD ...    start, run CMD, stop whatever happened
#
# Each daemon is waited for before the next starts (slurmctld started before slurmdbd
# answers fails with "we have no TRES from it"). State and logs: $SLURM_SMOKE_DIR.
set -euo pipefail

STATE=${SLURM_SMOKE_DIR:-/var/tmp/nanovlm-slurm}
CONF=/etc/slurm
MARK="# written by nanoVLM-Lite .ci/slurm/cluster.sh"
HOST=$(hostname -s)
CLUSTER=nanovlm

say() { echo "[cluster] $*" >&2; }

wait_for() {  # wait_for WHAT SECONDS CMD...: until CMD succeeds
    local what=$1 seconds=$2; shift 2
    for _ in $(seq "$seconds"); do
        if "$@" >/dev/null 2>&1; then say "$what is up"; return 0; fi
        sleep 1
    done
    say "$what did not come up in ${seconds}s; its log:"
    tail -n 20 "$STATE/log/$what.log" >&2 2>/dev/null || true
    return 1
}

install() {
    local need=0
    for bin in slurmctld slurmd slurmdbd munged mariadbd sacct; do
        command -v "$bin" >/dev/null || need=1
    done
    [ "$need" = 0 ] && return 0
    say "installing SLURM, munge and MariaDB from Debian"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        slurmctld slurmd slurmdbd slurm-client munge mariadb-server >"$STATE/log/apt.log"
}

configure() {
    if [ -f "$CONF/slurm.conf" ] && ! grep -qF "$MARK" "$CONF/slurm.conf"; then
        say "$CONF/slurm.conf exists and is not ours: not touching a real cluster"; exit 1
    fi
    mkdir -p "$CONF" "$STATE"/{ctld,slurmd,run}
    # the node as slurmd sees it, with 80% of its memory for jobs
    local node mem
    node=$(slurmd -C | head -n 1)
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
    node=$(echo "$node" | sed "s/RealMemory=[0-9]*/RealMemory=$mem/")
    cat >"$CONF/slurm.conf" <<EOF
$MARK
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)  # no name resolution needed
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
# sacct shows the plugin's --comment (rule_<name>...): which rule each job ran
AccountingStoreFlags=job_comment
# finished jobs stay visible to squeue for 5 min: the plugin's squeue polling needs >= 120 s
MinJobAge=300
ReturnToService=2
SchedulerType=sched/backfill
$node NodeAddr=127.0.0.1 Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$HOST MaxTime=INFINITE State=UP
EOF
    cat >"$CONF/gres.conf" <<EOF
$MARK
AutoDetect=off
NodeName=$HOST Name=gpu File=/dev/null
EOF
    cat >"$CONF/slurmdbd.conf" <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$CONF/slurmdbd.conf"
}

start() {
    mkdir -p "$STATE/log"
    install
    configure

    # munge: one key shared by every daemon and client
    [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; }
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged  # logs to /var/log/munge/
    wait_for munge 20 sh -c 'munge -n | unmunge'

    # MariaDB for accounting, reached over its unix socket
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >"$STATE/log/mariadb-install.log" 2>&1
    (runuser -u mysql -- /usr/sbin/mariadbd --socket=/run/mysqld/mysqld.sock \
        --pid-file=/run/mysqld/mysqld.pid --skip-networking=0 --bind-address=127.0.0.1 \
        >"$STATE/log/mariadb.log" 2>&1 &)
    wait_for mariadb 60 mariadb-admin ping
    mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

    slurmdbd
    wait_for slurmdbd 60 sacctmgr -n list cluster
    sacctmgr -i -n add cluster "$CLUSTER" >/dev/null 2>&1 || true

    slurmctld
    wait_for slurmctld 60 sh -c 'scontrol ping | grep -q UP'
    slurmd
    wait_for slurmd 60 sh -c "sinfo -h -n $HOST -o %t | grep -qE '^(idle|mix|alloc)'"
    sinfo >&2
}

kill_pidfile() {  # kill_pidfile NAME: stop the daemon whose pid is in $STATE/run/NAME.pid
    local f="$STATE/run/$1.pid" pid
    [ -s "$f" ] || return 0
    pid=$(cat "$f")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        kill -9 "$pid" 2>/dev/null || true
        say "stopped $1"
    fi
    rm -f "$f"
}

stop() {
    # queued or running jobs first, so nothing is left behind
    command -v scancel >/dev/null && scancel --full --quiet -u root 2>/dev/null || true
    kill_pidfile slurmd
    kill_pidfile slurmctld
    kill_pidfile slurmdbd
    if [ -s /run/mysqld/mysqld.pid ]; then
        mariadb-admin shutdown 2>/dev/null && say "stopped mariadb" || true
    fi
    if [ -s /run/munge/munged.pid ]; then
        kill "$(cat /run/munge/munged.pid)" 2>/dev/null && say "stopped munge" || true
    fi
    park
}

park() {
    # With no controller up, every SLURM client retries for MessageTimeout (10 s) before it
    # fails, and the SLURM executor plugin runs `scontrol show config` when Snakemake
    # imports it, which is at every Snakemake start, local runs and dry runs included: a
    # stopped cluster cost each one 9 s (a `snakemake -n` took 10.4 s wall for 1.3 CPU-s).
    # A stopped cluster's config fails at once; `configure` writes the whole file again.
    if [ -f "$CONF/slurm.conf" ] && grep -qF "$MARK" "$CONF/slurm.conf" &&
            ! grep -q '^MessageTimeout=' "$CONF/slurm.conf"; then
        echo "MessageTimeout=1  # parked by cluster.sh stop: no controller, fail at once" \
            >>"$CONF/slurm.conf"
        say "parked $CONF/slurm.conf"
    fi
}

case "${1:-}" in
    start) trap '[ $? = 0 ] || stop' EXIT; start ;;  # a failed start leaves nothing running
    stop) stop ;;
    run) shift; trap 'stop' EXIT; start; "$@" ;;
    *) echo "usage: $0 start|stop|run CMD..." >&2; exit 2 ;;
esac
