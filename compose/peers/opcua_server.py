"""An OPC-UA server for tests and the demo, served by asyncua, with known values that change.

Every `--period` seconds the step k grows by one (k = 0 at start-up) and every variable is written with
the same source timestamp. Namespace 2 (urn:haltless:peer), object Press:

  ns=2;s=Press.Temp      Double   20.5 + k
  ns=2;s=Press.Count     UInt32   k
  ns=2;s=Press.Pressure  Int16    -100 - k      (read with scale 0.1: -10 - 0.1 k)
  ns=2;s=Press.Level     Float    0.25 * k
  ns=2;s=Press.Running   Boolean  k is odd

The endpoint is opc.tcp://127.0.0.1:<port>/haltless, security None. With --user and --password, only
that user may open a session (anonymous is refused). With --secure the only endpoint is Basic256Sha256 with
SignAndEncrypt, under a self-signed certificate made at start-up (clients' certificates are accepted).
"""

import argparse
import asyncio
import logging
from datetime import datetime, timezone

from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager


class OneUser(UserManager):
    def __init__(self, name, password):
        self.name, self.password = name, password

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if username == self.name and password == self.password:
            return User(role=UserRole.User)
        return None


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--period", type=float, default=1.0)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--secure", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    kwargs = {}
    if args.user:
        kwargs["user_manager"] = OneUser(args.user, args.password)
    server = Server(**kwargs)
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{args.port}/haltless")
    server.set_server_name("Haltless test peer")
    if args.secure:
        from asyncua.crypto import cert_gen
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding
        from cryptography.x509.oid import ExtendedKeyUsageOID

        # Made in memory, so that nothing is left behind when the peer is killed.
        uri = "urn:haltless:peer:server"
        await server.set_application_uri(uri)
        key = cert_gen.generate_private_key()
        cert = cert_gen.generate_self_signed_app_certificate(
            key, uri, {}, [x509.UniformResourceIdentifier(uri), x509.DNSName("127.0.0.1")],
            extended=[ExtendedKeyUsageOID.SERVER_AUTH],
        )
        await server.load_certificate(cert.public_bytes(encoding=Encoding.DER), format="der")
        await server.load_private_key(cert_gen.dump_private_key_as_pem(key), format="pem")
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
    else:
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    if args.user:
        server.set_security_IDs(["Username"])
    idx = await server.register_namespace("urn:haltless:peer")
    press = await server.nodes.objects.add_object(ua.NodeId("Press", idx), "Press")
    spec = {
        "Temp": (ua.VariantType.Double, lambda k: 20.5 + k),
        "Count": (ua.VariantType.UInt32, lambda k: k),
        "Pressure": (ua.VariantType.Int16, lambda k: -100 - k),
        "Level": (ua.VariantType.Float, lambda k: 0.25 * k),
        "Running": (ua.VariantType.Boolean, lambda k: k % 2 == 1),
    }
    nodes = {}
    for name, (vtype, f) in spec.items():
        nodes[name] = await press.add_variable(ua.NodeId(f"Press.{name}", idx), name, ua.Variant(f(0), vtype))

    async def write(k):
        now = datetime.now(timezone.utc)
        for name, (vtype, f) in spec.items():
            dv = ua.DataValue(ua.Variant(f(k), vtype), SourceTimestamp=now, ServerTimestamp=now)
            await server.write_attribute_value(nodes[name].nodeid, dv)

    async with server:
        k = 0
        await write(k)
        print(f"opcua server on opc.tcp://127.0.0.1:{args.port}/haltless", flush=True)
        while True:
            await asyncio.sleep(args.period)
            k += 1
            await write(k)


if __name__ == "__main__":
    asyncio.run(main())
