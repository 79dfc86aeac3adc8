#!/usr/bin/env bash
# Manage a local Doccano 1.8.4 server for clinical-nlp (tests, benchmarks, local annotation).
#
# Usage: scripts/doccano.sh start|stop|status|adduser NAME [PASSWORD]
#
# Everything lives under .doccano/ in the repository root (git-ignored):
#   .doccano/venv      its own virtualenv (server dependencies conflict with ours; numpy<2)
#   .doccano/data      the SQLite database (also the Celery broker, sqla+sqlite) and media
#   .doccano/run       pid files and logs of the web server and the task worker
# Environment (documented local defaults, for a loopback-only development server):
#   DOCCANO_PORT            port on 127.0.0.1 (default 8000)
#   DOCCANO_ADMIN_USER      admin user created on start (default admin)
#   DOCCANO_ADMIN_PASSWORD  its password (default password)
#   DOCCANO_WORKERS         gunicorn workers (default 4)
#   DOCCANO_HOME_DIR        override the .doccano directory
#   DOCCANO_PYTHON          interpreter used to create the venv (default python3)
# start is idempotent (a running server is left alone); stop ends only the processes
# whose pid files this script wrote.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HOME_DIR="${DOCCANO_HOME_DIR:-$ROOT/.doccano}"
VENV="$HOME_DIR/venv"
DATA="$HOME_DIR/data"
RUN="$HOME_DIR/run"
PORT="${DOCCANO_PORT:-8000}"
ADMIN_USER="${DOCCANO_ADMIN_USER:-admin}"
ADMIN_PASSWORD="${DOCCANO_ADMIN_PASSWORD:-password}"
WORKERS="${DOCCANO_WORKERS:-4}"
PY="${DOCCANO_PYTHON:-python3}"
URL="http://127.0.0.1:$PORT"

mkdir -p "$DATA" "$RUN"

export STANDALONE=True
export DJANGO_SETTINGS_MODULE=config.settings.production
export DATABASE_URL="sqlite:///$DATA/db.sqlite3"
export CELERY_BROKER_URL="sqla+sqlite:///$DATA/celery-broker.sqlite3"
export MEDIA_ROOT="$DATA/media"
export DOCCANO_HOME="$DATA"
export PYTHONUNBUFFERED=1

log() { echo "[doccano.sh] $*" >&2; }

ensure_venv() {
  # The stamp names the pin set; change it when the pins change so old venvs get fixed.
  local stamp="$VENV/.clinical-nlp-installed-r1"
  if [ -f "$stamp" ] && [ -x "$VENV/bin/gunicorn" ]; then
    return 0
  fi
  log "installing doccano 1.8.4 into $VENV (one time)"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  # numpy<2: doccano's pandas 1.5 is built against numpy 1; marshmallow<4: environs 9.5
  # (pinned by doccano) reads marshmallow.__version_info__, removed in marshmallow 4.
  "$VENV/bin/pip" install -q --disable-pip-version-check 'doccano==1.8.4' 'numpy<2' 'marshmallow<4' 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
  "$VENV/bin/python" -c "import backend, numpy, marshmallow, environs" \
    || { log "doccano installation in $VENV is broken"; exit 1; }
  touch "$stamp"
}

backend_dir() { "$VENV/bin/python" -c 'import backend, os; print(os.path.dirname(backend.__file__))'; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

healthy() { curl -fsS -m 3 "$URL/v1/health/" >/dev/null 2>&1 || curl -fsS -m 3 -o /dev/null "$URL/v1/me" -w '%{http_code}' 2>/dev/null | grep -q '40[13]'; }

start_worker() {
  if ! pid_alive "$RUN/worker.pid"; then
    log "starting task worker (celery)"
    nohup "$VENV/bin/celery" --app=config --workdir="$1" worker --loglevel=info \
      --concurrency=1 >>"$RUN/worker.log" 2>&1 &
    echo $! >"$RUN/worker.pid"
    for _ in $(seq 1 30); do  # wait until it is consuming (or has died)
      grep -q "ready\." "$RUN/worker.log" 2>/dev/null && break
      pid_alive "$RUN/worker.pid" || break
      sleep 1
    done
  fi
}

cmd_start() {
  ensure_venv
  local bdir
  bdir="$(backend_dir)"
  if pid_alive "$RUN/web.pid" && healthy; then
    log "already running at $URL (pid $(cat "$RUN/web.pid"))"
  else
    if healthy; then
      log "something else already answers on $URL; refusing to start a second server (set DOCCANO_PORT)"
      exit 1
    fi
    log "migrating database in $DATA"
    (cd "$bdir" && "$VENV/bin/python" manage.py migrate --noinput >"$RUN/migrate.log" 2>&1 \
      && "$VENV/bin/python" manage.py create_roles >>"$RUN/migrate.log" 2>&1) \
      || { log "migration failed, see $RUN/migrate.log"; tail -20 "$RUN/migrate.log" >&2; exit 1; }
    (cd "$bdir" && "$VENV/bin/python" manage.py create_admin --noinput --username "$ADMIN_USER" \
      --password "$ADMIN_PASSWORD" --email "$ADMIN_USER@example.com" >>"$RUN/migrate.log" 2>&1) || true
    start_worker "$bdir"  # before the web server: it creates the broker's queue table alone
    log "starting web server on $URL ($WORKERS workers)"
    nohup "$VENV/bin/gunicorn" --chdir "$bdir" --bind "127.0.0.1:$PORT" --workers "$WORKERS" \
      --timeout 300 --pid "$RUN/web.pid" config.wsgi >"$RUN/web.log" 2>&1 &
    echo $! >"$RUN/web.pid"
  fi
  start_worker "$bdir"
  for i in $(seq 1 120); do
    if healthy; then log "healthy at $URL"; return 0; fi
    if ! pid_alive "$RUN/web.pid"; then break; fi
    # the worker can lose a start-up race on the SQLite broker's queue table: restart it
    if ! pid_alive "$RUN/worker.pid" && [ "$i" -lt 100 ]; then start_worker "$bdir"; fi
    sleep 1
  done
  log "server did not become healthy at $URL; see $RUN/web.log"
  tail -20 "$RUN/web.log" >&2 || true
  exit 1
}

stop_one() {
  local f="$RUN/$1.pid"
  if pid_alive "$f"; then
    local pid
    pid="$(cat "$f")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    log "stopped $1 (pid $pid)"
  fi
  rm -f "$f"
}

cmd_stop() { stop_one web; stop_one worker; }

cmd_status() {
  local rc=0
  if pid_alive "$RUN/web.pid"; then echo "web: running (pid $(cat "$RUN/web.pid"))"; else echo "web: stopped"; rc=1; fi
  if pid_alive "$RUN/worker.pid"; then echo "worker: running (pid $(cat "$RUN/worker.pid"))"; else echo "worker: stopped"; rc=1; fi
  if healthy; then echo "health: ok ($URL)"; else echo "health: not answering ($URL)"; rc=1; fi
  return $rc
}

cmd_adduser() {
  # The person types her own password (asked twice, not echoed); a second argument is for scripts only.
  local name="${1:?usage: doccano.sh adduser NAME [PASSWORD]}" password="${2:-}"
  if [ -z "$password" ]; then
    local again
    read -r -s -p "Doccano password for $name: " password; echo >&2
    read -r -s -p "again: " again; echo >&2
    [ -n "$password" ] && [ "$password" = "$again" ] || { echo "passwords empty or different" >&2; exit 2; }
  fi
  ensure_venv
  local bdir
  bdir="$(backend_dir)"
  (cd "$bdir" && DOCCANO_NEW_USER="$name" DOCCANO_NEW_PASSWORD="$password" "$VENV/bin/python" manage.py shell -c '
import os
from django.contrib.auth import get_user_model
User = get_user_model()
u, created = User.objects.get_or_create(username=os.environ["DOCCANO_NEW_USER"])
u.set_password(os.environ["DOCCANO_NEW_PASSWORD"])
u.save()
print(("created" if created else "updated") + " user " + u.username)
')
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  adduser) shift; cmd_adduser "$@" ;;
  *) echo "usage: $0 start|stop|status|adduser NAME [PASSWORD]" >&2; exit 64 ;;
esac
