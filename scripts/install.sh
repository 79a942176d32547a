#!/usr/bin/env bash
# Installs FaceReko on a Raspberry Pi running Raspberry Pi OS Bookworm. Safe to run again: every step checks
# what is already there and changes only what is missing; your /etc/facereko/facereko.toml is never
# overwritten.
#
#   sudo scripts/install.sh                 # build from this checkout (needs Rust >= 1.88 via rustup)
#   sudo scripts/install.sh --binary PATH   # install a prebuilt facereko binary instead of building
#   options: --no-models (skip the face models), --no-start (install but do not start the service),
#            --dry-run (print what would be done, change nothing)
#
# What it changes, and why:
#   * /boot/firmware/config.txt: `dtparam=spi=on` (the MFRC522 reader is on SPI0) and `camera_auto_detect=1`
#     (the camera module through libcamera), each only if missing; a backup is kept once as
#     config.txt.facereko-backup. Both take effect after a reboot.
#   * apt packages: rpicam-apps (camera), the dlib/OpenBLAS runtime libraries, and the build tools when
#     building from source.
#   * a `facereko` system user in the gpio, spi and video groups (no login shell, no sudo).
#   * /usr/local/bin/facereko, /etc/facereko/facereko.toml (from facereko.example.toml, only if absent),
#     /var/lib/facereko (data: database, photos, face models), and the systemd unit facereko.service.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# FACEREKO_ROOT lets the file-writing steps be tried out in a scratch directory (with --dry-run).
ROOT="${FACEREKO_ROOT:-}"
BIN="$ROOT/usr/local/bin/facereko"
CONF_DIR="$ROOT/etc/facereko"
CONF="$CONF_DIR/facereko.toml"
DATA_DIR="$ROOT/var/lib/facereko"
UNIT="$ROOT/etc/systemd/system/facereko.service"
USER_NAME=facereko

binary=""
models=1
start=1
dry=0
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
        --no-models) models=0; shift ;;
        --no-start) start=0; shift ;;
        --dry-run) dry=1; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done

say()  { printf '\033[1m==> %s\033[0m\n' "$*"; }
note() { printf '    %s\n' "$*"; }
warn() { printf '\033[33mWARNING: %s\033[0m\n' "$*" >&2; }
die()  { printf '\033[31mERROR: %s\033[0m\n' "$*" >&2; exit 1; }
# Runs a command, or prints it under --dry-run.
run() {
    if [ "$dry" = 1 ]; then printf '    [dry-run] %s\n' "$*"; else "$@"; fi
}

if [ "$dry" = 0 ] && [ "$(id -u)" != 0 ]; then
    die "run as root: sudo $0 $*"
fi

# ---- platform -------------------------------------------------------------------------------------------
say "Checking the platform"
# shellcheck disable=SC1091
codename="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-unknown}")"
if [ "$codename" != bookworm ]; then
    warn "this is '$codename', not Raspberry Pi OS Bookworm: package names and paths may differ"
fi
model=""
if [ -r /proc/device-tree/model ]; then model="$(tr -d '\0' < /proc/device-tree/model)"; fi
is_pi=0
case "$model" in *"Raspberry Pi"*) is_pi=1; note "board: $model" ;; *) warn "not a Raspberry Pi (${model:-no device-tree model}): skipping SPI and camera set-up; the daemon will use simulated devices unless hardware.mode = \"pi\"" ;; esac

# ---- boot configuration: SPI and camera --------------------------------------------------------------------
reboot_needed=0
if [ "$is_pi" = 1 ] || [ -n "$ROOT" ]; then
    config_txt="$ROOT/boot/firmware/config.txt"
    [ -f "$config_txt" ] || config_txt="$ROOT/boot/config.txt"
    if [ ! -f "$config_txt" ]; then
        warn "no config.txt under $ROOT/boot/firmware or $ROOT/boot: enable SPI and the camera by hand"
    else
        backup() {
            if [ ! -f "$config_txt.facereko-backup" ]; then
                run cp -p "$config_txt" "$config_txt.facereko-backup"
                note "backup: $config_txt.facereko-backup"
            fi
        }
        say "SPI (the MFRC522 reader is on SPI0, /dev/spidev0.0)"
        if grep -Eq '^[[:space:]]*dtparam=spi=on' "$config_txt"; then
            note "already enabled in $config_txt"
        else
            backup
            if [ -z "$ROOT" ] && command -v raspi-config >/dev/null 2>&1; then
                note "enabling with raspi-config (adds dtparam=spi=on to $config_txt)"
                run raspi-config nonint do_spi 0
            else
                note "adding dtparam=spi=on to $config_txt"
                if [ "$dry" = 0 ]; then printf '\n# FaceReko: MFRC522 reader on SPI0\ndtparam=spi=on\n' >> "$config_txt"; fi
            fi
            [ -e /dev/spidev0.0 ] || reboot_needed=1
        fi
        say "Camera (libcamera, camera module auto-detection)"
        if grep -Eq '^[[:space:]]*start_x=1' "$config_txt"; then
            warn "$config_txt has start_x=1 (the legacy camera stack): remove it, libcamera needs the new stack"
        fi
        if grep -Eq '^[[:space:]]*(camera_auto_detect=1|dtoverlay=(imx|ov)[0-9a-z_-]*)' "$config_txt"; then
            note "already enabled in $config_txt"
        else
            backup
            note "adding camera_auto_detect=1 to $config_txt"
            if [ "$dry" = 0 ]; then printf '\n# FaceReko: camera module through libcamera\ncamera_auto_detect=1\n' >> "$config_txt"; fi
            reboot_needed=1
        fi
    fi
fi

# ---- packages -----------------------------------------------------------------------------------------------
say "System packages"
pkgs=(ca-certificates libdlib19.1 libopenblas0 liblapack3)
if ! command -v rpicam-still >/dev/null 2>&1 && ! command -v libcamera-still >/dev/null 2>&1; then
    # Raspberry Pi OS Lite ships the lite variant (no preview window, no X dependencies).
    if apt-cache show rpicam-apps-lite >/dev/null 2>&1; then pkgs+=(rpicam-apps-lite)
    elif apt-cache show rpicam-apps >/dev/null 2>&1; then pkgs+=(rpicam-apps)
    else warn "rpicam-apps is not available from apt: only the \"command\" camera backend will work"; fi
fi
if [ -z "$binary" ]; then
    pkgs+=(build-essential pkg-config libdlib-dev libopenblas-dev liblapack-dev)
fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    note "all present"
else
    note "installing: ${missing[*]}"
    run apt-get update
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# ---- user -----------------------------------------------------------------------------------------------------
say "System user '$USER_NAME' (groups gpio, spi, video)"
if getent passwd "$USER_NAME" >/dev/null; then
    note "exists"
else
    run useradd --system --user-group --home-dir /var/lib/facereko --no-create-home \
        --shell /usr/sbin/nologin --comment "FaceReko door controller" "$USER_NAME"
fi
for g in gpio spi video; do
    if ! getent group "$g" >/dev/null; then
        warn "group $g does not exist (not Raspberry Pi OS?): creating it; add a udev rule giving it /dev access"
        run groupadd --system "$g"
    fi
    if id -nG "$USER_NAME" 2>/dev/null | tr ' ' '\n' | grep -qx "$g"; then
        note "already in $g"
    else
        run usermod -a -G "$g" "$USER_NAME"
    fi
done

# ---- binary ---------------------------------------------------------------------------------------------------
say "The facereko binary"
if [ -n "$binary" ]; then
    [ -x "$binary" ] || die "--binary $binary is not an executable file"
    built="$binary"
else
    builder="${SUDO_USER:-root}"
    if ! sudo -u "$builder" -H bash -lc 'command -v cargo' >/dev/null 2>&1; then
        die "cargo not found for user $builder: install Rust with rustup (the Debian rustc is too old), or pass --binary PATH"
    fi
    note "building in $REPO as $builder (a first build takes a long while on a Pi)"
    run sudo -u "$builder" -H bash -lc "cd '$REPO' && cargo build --release --locked -p facereko --target-dir '$REPO/target'"
    built="$REPO/target/release/facereko"
fi
if [ "$dry" = 0 ] && [ -f "$BIN" ] && cmp -s "$built" "$BIN"; then
    note "$BIN is up to date"
else
    run install -D -m 0755 "$built" "$BIN"
    note "installed $BIN"
fi

# ---- config and data ---------------------------------------------------------------------------------------------
say "Configuration and data"
run install -d -m 0750 -o root -g "$USER_NAME" "$CONF_DIR"
if [ -f "$CONF" ]; then
    note "keeping your $CONF"
else
    example="$REPO/facereko.example.toml"
    [ -f "$example" ] || die "$example is missing: run this script from a FaceReko checkout"
    run install -m 0640 -o root -g "$USER_NAME" "$example" "$CONF"
    note "wrote $CONF from facereko.example.toml: review it (wiring, door_id, database, MQTT)"
fi
run install -d -m 0750 -o "$USER_NAME" -g "$USER_NAME" "$DATA_DIR"

if [ "$models" = 1 ]; then
    say "Face models"
    if ! run runuser -u "$USER_NAME" -- env OPENBLAS_NUM_THREADS=1 "$BIN" --config "$CONF" --data-dir "$DATA_DIR" models install; then
        warn "installing the face models failed; retry with: sudo -u $USER_NAME $BIN --config $CONF --data-dir $DATA_DIR models install"
    fi
fi

# ---- service ---------------------------------------------------------------------------------------------------------
say "systemd service"
src_unit="$REPO/packaging/systemd/facereko.service"
if [ -f "$UNIT" ] && cmp -s "$src_unit" "$UNIT"; then
    note "$UNIT is up to date"
else
    run install -D -m 0644 "$src_unit" "$UNIT"
    run systemctl daemon-reload
fi
run systemctl enable facereko.service
if [ "$reboot_needed" = 1 ]; then
    say "Reboot needed"
    note "SPI or the camera were just enabled: reboot (sudo reboot); facereko starts by itself afterwards"
elif [ "$start" = 1 ]; then
    run systemctl restart facereko.service
    note "started: journalctl -u facereko -f"
fi

say "Done. Next: check the wiring and the door"
note "sudo -u $USER_NAME $BIN --config $CONF --data-dir $DATA_DIR doctor"
note "sudo systemctl stop facereko   # the commands below need the reader and the GPIO lines"
note "sudo -u $USER_NAME $BIN --config $CONF --data-dir $DATA_DIR selftest outputs"
note "sudo -u $USER_NAME $BIN --config $CONF --data-dir $DATA_DIR card read"
