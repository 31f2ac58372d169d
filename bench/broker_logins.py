"""What one login per connection costs: `eit devices add` against a running broker (the compose
stack's configuration, dynamic security) and the time from CONNECT to CONNACK of a bound login.

    python -m bench.broker_logins [--logins 200]

The broker is this machine's Mosquitto running deploy/mosquitto/mosquitto.conf
(testbed.services.DynsecMosquitto); the TLS listener gets a throwaway self-signed certificate and
is not measured (the logins go to the plain listener, so the figure is the plugin's work, not
TLS's).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from bench.proc import cpu_model
from eit.confread import load_yaml
from testbed.services import EIT, REPO, DynsecMosquitto, write_serve_config

FACTORIES = ("kaeng-khoi-biomass", "siam-cassava-starch", "eastern-petrochem")


def throwaway_certificate(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "server.crt", folder / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def connack_s(port: int, login: str, password: str) -> float:
    answered: list[float] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=login, protocol=mqtt.MQTTv5)
    client.username_pw_set(login, password)
    client.on_connect = lambda *_: answered.append(time.perf_counter())
    started = time.perf_counter()
    client.connect("127.0.0.1", port)
    while not answered:
        client.loop(0.01)
    client.disconnect()
    return answered[0] - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logins", type=int, default=200, help="how many logins to time")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="eit-bench-broker-"))
    broker = DynsecMosquitto(*throwaway_certificate(work)).start()
    try:
        config = write_serve_config(work / "serve", broker.port)
        data = load_yaml(config)
        data["mqtt"] = broker.ingest_mqtt()
        data["broker"] = broker.admin_section()
        config.write_text(yaml.safe_dump(data))
        out = work / "password"
        adds = []
        for factory in FACTORIES:
            started = time.perf_counter()
            command = ["devices", "add", factory, "--config", f"{config}", "--password-out", f"{out}"]
            subprocess.run(
                [*EIT, *command],
                check=True,
                capture_output=True,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
            )
            adds.append(time.perf_counter() - started)
        password = out.read_text().strip()
        login = f"{FACTORIES[-1]}-fenceline-1"
        times = sorted(connack_s(broker.port, login, password) for _ in range(args.logins))
    finally:
        broker.remove()
    p95 = times[int(0.95 * (len(times) - 1))]
    print(f"{datetime.date.today()}, {cpu_model()}, Python {platform.python_version()}, Mosquitto 2.0.11")
    print(f"eit devices add (a process each, 1-2 logins): {', '.join(f'{s:.2f}' for s in adds)} s")
    print(
        f"bound login, CONNECT to CONNACK ({args.logins} logins): median "
        f"{statistics.median(times) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms"
    )


if __name__ == "__main__":
    main()
