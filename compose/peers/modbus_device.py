"""A Modbus TCP device for tests and the demo, served by pymodbus, with known values that change.

Every `--period` seconds the step k grows by one (k = 0 at start-up). Unit `--unit` answers:

  holding 0-1   f32, big byte and word order     20.5 + k
  holding 2     i16                              -100 - k      (read with scale 0.1: -10 - 0.1 k)
  holding 3     u16                              k
  holding 10-13 f64, little word order           1234.5 + k
  input   0-1   u32, little word order           70000 + k
  input   2-3   i32, big/big                     -70000 - k
  coil    0     bool                             k is odd
  discrete 0    bool                             k is even

Addresses 0..99 of each table exist; anything else answers "illegal data address".
With --delay-ms every answer is held back that long (a slow device).
"""

import argparse
import asyncio
import struct
import time

from pymodbus.server import StartAsyncTcpServer
from pymodbus.simulator import SimData, SimDevice, DataType

T0 = time.monotonic()


def words(fmt, value, word_little=False):
    raw = struct.pack(">" + fmt, value)
    regs = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    return list(reversed(regs)) if word_little else regs


def table(fc, k):
    if fc in (3, 6, 16, 22, 23):
        out = {}
        for i, w in enumerate(words("f", 20.5 + k)):
            out[0 + i] = w
        out[2] = words("h", -100 - k)[0]
        out[3] = words("H", k % 65536)[0]
        for i, w in enumerate(words("d", 1234.5 + k, word_little=True)):
            out[10 + i] = w
        return out
    if fc == 4:
        out = {}
        for i, w in enumerate(words("I", 70000 + k, word_little=True)):
            out[0 + i] = w
        for i, w in enumerate(words("i", -70000 - k)):
            out[2 + i] = w
        return out
    if fc in (1, 5, 15):
        return {0: k % 2 == 1}
    if fc == 2:
        return {0: k % 2 == 0}
    return {}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--unit", type=int, default=1)
    parser.add_argument("--period", type=float, default=1.0)
    parser.add_argument("--delay-ms", type=int, default=0)
    args = parser.parse_args()

    async def action(function_code, start_address, address, count, current_registers, set_values):
        k = int((time.monotonic() - T0) / args.period)
        for addr, value in table(function_code, k).items():
            i = addr - start_address
            if 0 <= i < len(current_registers):
                current_registers[i] = value
        if args.delay_ms:
            await asyncio.sleep(args.delay_ms / 1000)
        return None

    blocks = (
        [SimData(0, count=100, values=False, datatype=DataType.BITS)],
        [SimData(0, count=100, values=False, datatype=DataType.BITS)],
        [SimData(0, count=100, values=0, datatype=DataType.REGISTERS)],
        [SimData(0, count=100, values=0, datatype=DataType.REGISTERS)],
    )
    device = SimDevice(id=args.unit, simdata=blocks, action=action)
    print(f"modbus device on 127.0.0.1:{args.port} unit {args.unit}", flush=True)
    asyncio.run(StartAsyncTcpServer(context=device, address=("127.0.0.1", args.port)))


if __name__ == "__main__":
    main()
