#!/usr/bin/env bash
# Install tetherd on a device as a systemd service, or remove it (docs/security.md#installing-the-agent).
#
#   install-tetherd.sh --broker mqtts://kiosk-17@broker.example --broker-password-file FILE --device-id kiosk-17 \
#       --trusted-key ed25519:... [--ca ca.pem --cert kiosk-17.pem --key kiosk-17.key] [--source DIR|WHEEL]
#   install-tetherd.sh --uninstall [--purge]
#
# It creates an isolated environment in --prefix (a venv with tether installed from --source, by default the
# directory this script is in), writes /etc/tether/agent.toml and the broker password (from --broker-password-file
# or $TETHER_BROKER_PASSWORD: never in argv, where ps shows it) at mode 0600, and the unit, checks the config with
# `tetherd config check`, then enables and starts the service. --env uses an environment that already has tether
# installed instead of making one (images built with it). --root installs under another root (images, tests).
# --broker again names another node of the broker's cluster, tried in turn when one is down (docs/brokers.md).
set -euo pipefail

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
fail() { echo "install-tetherd: error: $*" >&2; exit 1; }

script_dir="$(cd "$(dirname "$0")" && pwd)"
root="" prefix="/opt/tether" env_dir="" source_dir="$(dirname "$script_dir")"
brokers=() password_file="" device_id="" trusted_keys=() ca="" cert="" key="" uninstall=0 purge=0 extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --broker) brokers+=("$2"); shift 2 ;;
        --broker-password-file) password_file="$2"; shift 2 ;;
        --device-id) device_id="$2"; shift 2 ;;
        --trusted-key) trusted_keys+=("$2"); shift 2 ;;
        --ca) ca="$2"; shift 2 ;;
        --cert) cert="$2"; shift 2 ;;
        --key) key="$2"; shift 2 ;;
        --source) source_dir="$2"; shift 2 ;;
        --prefix) prefix="$2"; shift 2 ;;
        --env) env_dir="$2"; shift 2 ;;
        --root) root="$2"; shift 2 ;;
        --set) extra+=("$2"); shift 2 ;;
        --uninstall) uninstall=1; shift ;;
        --purge) purge=1; shift ;;
        -h|--help) usage ;;
        *) fail "unknown option $1 (see --help)" ;;
    esac
done

config_dir="$root/etc/tether"
unit_file="$root/etc/systemd/system/tetherd.service"
state_dir="/var/lib/tetherd"

if [ "$uninstall" = 1 ]; then
    systemctl disable --now tetherd.service || true
    rm -f "$unit_file"
    systemctl daemon-reload
    rm -rf "$root$prefix"
    if [ "$purge" = 1 ]; then
        rm -rf "$config_dir" "$root$state_dir"
    fi
    echo "tetherd removed$([ "$purge" = 1 ] && echo ", with its config and state")"
    exit 0
fi

[ "${#brokers[@]}" -gt 0 ] || fail "--broker is required"
[ -n "$device_id" ] || fail "--device-id is required"
[ "${#trusted_keys[@]}" -gt 0 ] || fail "--trusted-key is required: devices run only commands the controller signed"
password=""
if [ -n "$password_file" ]; then
    [ -r "$password_file" ] || fail "cannot read --broker-password-file $password_file"
    IFS= read -r password < "$password_file" || true  # a last line without a newline is read all the same
    [ -n "$password" ] || fail "the first line of $password_file is empty"
elif [ -n "${TETHER_BROKER_PASSWORD:-}" ]; then
    password="$TETHER_BROKER_PASSWORD"
fi
for broker in "${brokers[@]}"; do
    case "$broker" in
        *://*:*@*) echo "install-tetherd: warning: the password in --broker is visible to every local user in ps;" \
            "give the user name only, and the password with --broker-password-file or TETHER_BROKER_PASSWORD" >&2 ;;
    esac
done

# run_bin: where the programs are now; unit_bin: where the unit finds them on the device.
if [ -n "$env_dir" ]; then
    [ -x "$env_dir/bin/tetherd" ] || fail "$env_dir has no bin/tetherd"
    run_bin="$env_dir/bin" unit_bin="$env_dir/bin"
else
    python3 -m venv "$root$prefix"
    "$root$prefix/bin/pip" install --quiet "$source_dir"
    run_bin="$root$prefix/bin" unit_bin="$prefix/bin"
fi

toml_string() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
install -d -m 0700 "$config_dir"
config="$config_dir/agent.toml"
(
    umask 077
    # printf is a shell builtin: the password reaches the file without appearing in any process's argv.
    [ -z "$password" ] || printf '%s\n' "$password" > "$config_dir/broker-password.new"
    {
        echo "# Written by install-tetherd.sh; check it with: tetherd config check --config /etc/tether/agent.toml"
        if [ "${#brokers[@]}" -eq 1 ]; then
            echo "broker = $(toml_string "${brokers[0]}")"
        else
            printf 'broker = ['
            separator=""
            for broker in "${brokers[@]}"; do printf '%s%s' "$separator" "$(toml_string "$broker")"; separator=", "; done
            echo "]"
        fi
        [ -z "$password" ] || echo "broker_password_file = $(toml_string "/etc/tether/broker-password")"
        echo "device_id = $(toml_string "$device_id")"
        echo "state_dir = $(toml_string "$state_dir")"
        printf 'trusted_keys = ['
        separator=""
        for trusted in "${trusted_keys[@]}"; do printf '%s%s' "$separator" "$(toml_string "$trusted")"; separator=", "; done
        echo "]"
        for name in ca cert key; do
            value="${!name}"
            [ -z "$value" ] && continue
            install -m 0600 "$value" "$config_dir/$name.pem"
            echo "tls_${name}_file = $(toml_string "/etc/tether/$name.pem")"
        done
        for line in "${extra[@]}"; do echo "$line"; done
    } > "$config.new"
)
# Checked with the paths it will have on the device, as they are now (under --root; the new password beside the old).
sed "s|\"/etc/tether/broker-password\"|\"$config_dir/broker-password.new\"|; s|\"/etc/tether/|\"$config_dir/|g;
    s|\"$state_dir\"|\"$root$state_dir\"|" "$config.new" > "$config.check"
if ! env -u TETHER_BROKER_PASSWORD "$run_bin/tetherd" config check --config "$config.check" > /dev/null; then
    rm -f "$config.new" "$config.check" "$config_dir/broker-password.new"
    fail "the config above is invalid; nothing was installed"
fi
rm -f "$config.check"
[ -z "$password" ] || mv "$config_dir/broker-password.new" "$config_dir/broker-password"
mv "$config.new" "$config"

install -d "$(dirname "$unit_file")"
sed "s|/opt/tether/bin/|$unit_bin/|g" "$script_dir/tetherd.service" > "$unit_file"
systemctl daemon-reload
systemctl enable --now tetherd.service
echo "tetherd installed for $device_id: $unit_file, $config"
