#!/bin/sh
# Runs in the broker's container before Mosquitto (docker-compose.yml, `entrypoint`): checks the
# files Mosquitto needs and, when one is missing or unreadable for the broker's user, says which
# and how to fix it, then stops. Mosquitto itself would start anyway and refuse every login (no
# dynamic-security file) or stop with an OpenSSL error (certificate), which tells an operator less.
# Mosquitto drops to its own user (uid 1883 in the eclipse-mosquitto image) before it reads
# these files, so they must belong to that user. POSIX sh (the image's busybox ash, or dash).
#
# tests/test_compose.py runs it with its paths and the broker's uid given in the environment.
set -u

dynsec_dir=${EIT_BROKER_DYNSEC_DIR:-/mosquitto/dynsec}
certs_dir=${EIT_BROKER_CERTS_DIR:-/mosquitto/certs}
broker_uid=${EIT_BROKER_UID:-1883}
dynsec=$dynsec_dir/dynamic-security.json
problems=0

say() { echo "eit-broker-preflight: $*" >&2; }
problem() { say "$*"; problems=$((problems + 1)); }

owned_by_broker() {  # PATH belongs to the broker's user
	[ "$(stat -c %u "$1")" = "$broker_uid" ]
}

if [ -L "$dynsec" ]; then
	problem "$dynsec is a symbolic link: Mosquitto 2.1 refuses to read files through one; copy the file"
elif [ ! -f "$dynsec" ]; then
	problem "$dynsec is missing: the broker would start with no login at all. Write it once with" \
		"\`docker compose run --rm --no-deps --user root broker-admin devices init ...\` (README," \
		"'Production: docker compose up')"
elif ! owned_by_broker "$dynsec" || ! owned_by_broker "$dynsec_dir"; then
	problem "$dynsec and its folder must belong to the broker's user (uid $broker_uid), who reads it" \
		"and writes its changes beside it: on the host, \`sudo chown -R $broker_uid:$broker_uid" \
		"deploy/mosquitto/dynsec && sudo chmod 750 deploy/mosquitto/dynsec && sudo chmod 640" \
		"deploy/mosquitto/dynsec/dynamic-security.json\`"
fi

for file in server.crt server.key; do
	path=$certs_dir/$file
	if [ -L "$path" ]; then
		problem "$path is a symbolic link: copy the file there instead (Mosquitto 2.1 refuses links)"
	elif [ ! -f "$path" ]; then
		problem "$path is missing: the TLS listener (8883) needs the broker's certificate and key" \
			"in deploy/mosquitto/certs (docs/broker.md, 'TLS')"
	elif ! owned_by_broker "$path"; then
		problem "$path must belong to the broker's user (uid $broker_uid), who reads it after" \
			"dropping root: \`sudo chown $broker_uid:$broker_uid deploy/mosquitto/certs/$file &&" \
			"sudo chmod 640 deploy/mosquitto/certs/$file\`"
	fi
done

if [ "$problems" -gt 0 ]; then
	say "the broker does not start until the $problems problem(s) above are fixed"
	exit 78  # EX_CONFIG
fi
exec "$@"
