#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine: munged, slurmctld, slurmd, and slurmdbd on MariaDB
# (submitit reads job states with sacct, which needs accounting). For the SLURM tests (tests/slurm/) and
# for trying `make sweep-cifar LAUNCHER=slurm` without a cluster. Needs root and Debian/Ubuntu packages
# (installed when missing); everything lives under one folder, nothing is written to /etc, no systemd.
#
#   tests/slurm/cluster.sh start    # installs, starts, waits for the node to be idle; prints the SLURM_CONF line
#   tests/slurm/cluster.sh status   # prints the SLURM_CONF path and exits 0 while the cluster answers
#   tests/slurm/cluster.sh stop     # stops every daemon by its pid file
set -euo pipefail

ROOT=${DEGRADATION_SLURM_DIR:-/tmp/degradation-slurm}
CONF=$ROOT/etc/slurm.conf
PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)
PROGRAMS=(slurmctld slurmd sbatch slurmdbd munged mariadbd)
CPU_SLOTS=8
DB_PORT=3307            # not MariaDB's 3306: a database already on the machine is left alone
DAEMONS=(slurmd slurmctld slurmdbd mariadb munged)  # stopped in this order

say() { echo "slurm cluster: $*" >&2; }
die() { say "error: $*"; exit 1; }

node_state() { [[ -f $CONF ]] && SLURM_CONF=$CONF timeout 5 sinfo -h -o %T 2>/dev/null; }
answers() { node_state | grep -qvE '^(down|drain|fail|unknown)'; }
idle() { node_state | grep -qx idle; }

wait_for() {  # wait_for SECONDS WHAT COMMAND...
    local seconds=$1 what=$2; shift 2
    local deadline=$((SECONDS + seconds))
    while ((SECONDS < deadline)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    die "$what did not come up within ${seconds}s (logs in $ROOT/log/)"
}

install_packages() {
    local missing=0 program
    for program in "${PROGRAMS[@]}"; do command -v "$program" >/dev/null || missing=1; done
    ((missing)) || return 0
    [[ $(id -u) == 0 ]] || die "installing ${PACKAGES[*]} needs root"
    command -v apt-get >/dev/null || die "no apt-get: install ${PACKAGES[*]} by hand"
    say "installing ${PACKAGES[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
}

start_munge() {  # munged runs as user munge, with its key and socket in folders it owns
    install -d -m 700 -o munge -g munge "$ROOT/munge"
    install -d -m 755 -o munge -g munge "$ROOT/munge-socket"
    dd if=/dev/urandom of="$ROOT/munge/munge.key" bs=1024 count=1 status=none
    chown munge:munge "$ROOT/munge/munge.key" && chmod 400 "$ROOT/munge/munge.key"
    runuser -u munge -- munged --key-file="$ROOT/munge/munge.key" --socket="$ROOT/munge-socket/munge.socket" \
        --pid-file="$ROOT/munge-socket/munged.pid" --log-file="$ROOT/munge/munged.log" --seed-file="$ROOT/munge/munge.seed"
    ln -sf "$ROOT/munge-socket/munged.pid" "$ROOT/run/munged.pid"
}

start_mariadb() {
    mariadb-install-db --user=root --datadir="$ROOT/mysql" --auth-root-authentication-method=socket \
        --skip-test-db >"$ROOT/log/mariadb-install.log" 2>&1
    mariadbd --user=root --datadir="$ROOT/mysql" --socket="$ROOT/run/mariadb.sock" --port=$DB_PORT \
        --bind-address=127.0.0.1 --skip-name-resolve --pid-file="$ROOT/run/mariadb.pid" \
        --log-error="$ROOT/log/mariadb.log" >/dev/null 2>&1 &
    wait_for 30 MariaDB mariadb --socket="$ROOT/run/mariadb.sock" -e "select 1"
    mariadb --socket="$ROOT/run/mariadb.sock" -e "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

write_configs() {
    local host node
    host=$(hostname -s)
    # The node offers CPU_SLOTS cores whatever the machine has (config_overrides): the tests' jobs are tiny and
    # some wait for each other, so more run at once than a 2-core machine has cores.
    node="NodeName=$host CPUs=$CPU_SLOTS RealMemory=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024))"
    cat >"$CONF" <<CONF
ClusterName=degradation
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdParameters=config_overrides
AuthType=auth/munge
AuthInfo=socket=$ROOT/munge-socket/munge.socket,cred_expire=5
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePass=$ROOT/munge-socket/munge.socket
JobCompType=jobcomp/none
SchedulerParameters=sched_interval=1,bf_interval=1
MpiDefault=none
ReturnToService=2
StateSaveLocation=$ROOT/state
SlurmdSpoolDir=$ROOT/spool
SlurmctldPidFile=$ROOT/run/slurmctld.pid
SlurmdPidFile=$ROOT/run/slurmd.pid
SlurmctldLogFile=$ROOT/log/slurmctld.log
SlurmdLogFile=$ROOT/log/slurmd.log
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    cat >"$ROOT/etc/slurmdbd.conf" <<CONF
AuthType=auth/munge
AuthInfo=socket=$ROOT/munge-socket/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
PidFile=$ROOT/run/slurmdbd.pid
LogFile=$ROOT/log/slurmdbd.log
CONF
    chmod 600 "$ROOT/etc/slurmdbd.conf"
}

start() {
    if answers; then say "already up"; echo "export SLURM_CONF=$CONF"; return; fi
    stop 2>/dev/null || true
    install_packages
    rm -rf "$ROOT"
    install -d -m 755 "$ROOT" "$ROOT"/{etc,run,log,state,spool,mysql}
    export SLURM_CONF=$CONF
    start_munge
    start_mariadb
    write_configs
    slurmdbd
    wait_for 30 slurmdbd sacctmgr -n list cluster
    sacctmgr -i add cluster degradation >/dev/null
    slurmctld
    slurmd
    wait_for 30 "the node (idle in sinfo)" idle
    say "up in ${SECONDS}s; logs in $ROOT/log/"
    echo "export SLURM_CONF=$CONF"
}

stop() {
    local daemon pid
    for daemon in "${DAEMONS[@]}"; do
        pid=$(cat "$ROOT/run/$daemon.pid" 2>/dev/null) || continue
        kill "$pid" 2>/dev/null || continue
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    say "stopped"
}

status() {
    answers || { say "not running (start it with $0 start)"; exit 1; }
    echo "$CONF"
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|status|stop" >&2; exit 2 ;;
esac
