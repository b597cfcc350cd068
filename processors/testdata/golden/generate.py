#!/usr/bin/env python3
"""Writes the golden tests' input series (deterministic; rerun only to change the inputs).

Each case is a folder with input.csv (`ts_ms,metric,value`), rules.json (a JSON array of rules; [] for the
default detectors) and expected.csv, which `cargo test -p haltless-processors --test golden` compares
against (UPDATE_GOLDEN=1 rewrites it; review the diff)."""
import json, math, os, random

T0 = 1_793_000_000_000  # 2026-10-26, on the minute
here = os.path.dirname(os.path.abspath(__file__))

def write(case, rows, rules):
    os.makedirs(os.path.join(here, case), exist_ok=True)
    with open(os.path.join(here, case, "input.csv"), "w") as f:
        f.write("ts_ms,metric,value\n")
        for ts, metric, v in rows:
            f.write(f"{ts},{metric},{v:.4f}\n")
    with open(os.path.join(here, case, "rules.json"), "w") as f:
        json.dump(rules, f, indent=1)
        f.write("\n")

def noise(rng, scale):
    return (rng.random() - 0.5) * 2 * scale

# EWMA (default detectors): a temperature every 5 minutes for 4 days, a spike, a lasting step.
rng = random.Random(1)
rows = []
for i in range(4 * 288):
    v = 60 + 2 * math.sin(i / 288 * 2 * math.pi) + noise(rng, 0.5)
    if i == 400: v += 12
    if i >= 700: v += 8
    rows.append((T0 + i * 300_000, "spindle_temp", v))
write("ewma_defaults", rows, [])

# Rate of change: pressure at irregular spacing (20 s to 3 min); a fast ramp, and a big gap with a small change
# that must not count as fast.
rng = random.Random(2)
rows, ts, v = [], T0, 4.0
for i in range(900):
    ts += rng.choice([20_000, 45_000, 60_000, 180_000])
    if i == 500: ts += 6 * 3_600_000  # a six-hour gap
    v += noise(rng, 0.02)
    if 700 <= i < 706: v += 0.8   # a ramp of 0.8 bar per reading
    rows.append((ts, "pressure", v))
write("rate_irregular", rows, [
    {"id": "pressure-rate", "name": "Pressure changes fast", "severity": "critical",
     "when": {"metric": "pressure", "detector": "rate", "max_per_sec": 0.005}},
    {"id": "pressure-velocity-band", "name": "Pressure velocity out of band",
     "when": {"metric": "pressure", "detector": "rate", "band": 12}},
])

# Static baseline: bearing temperature every 10 minutes for 11 days; from day 8 a slow drift (+0.3 per hour)
# that the 7-day baseline sees, fixed by maintenance on day 10; and the same signal under an above-threshold
# that must stay quiet.
rng = random.Random(3)
rows = []
for i in range(11 * 144):
    v = 45 + 1.5 * math.sin(i / 144 * 2 * math.pi) + noise(rng, 0.4)
    if 8 * 144 <= i < 10 * 144: v += (i - 8 * 144) * 0.05
    rows.append((T0 + i * 600_000, "bearing_temp", v))
write("baseline_drift", rows, [
    {"id": "bearing-baseline", "name": "Bearing away from its week", "severity": "warning",
     "when": {"metric": "bearing_temp", "detector": "baseline", "z_limit": 4}},
    {"id": "bearing-hot", "name": "Bearing hot",
     "when": {"metric": "bearing_temp", "detector": "above", "value": 80}},
])

# Threshold with hysteresis: a value hovering around its limit flaps without, holds with.
rng = random.Random(4)
rows = []
for i in range(400):
    v = 70 + noise(rng, 1)
    if 100 <= i < 200: v = 89.5 + noise(rng, 1.5)   # hovering at the limit 90
    if 250 <= i < 260: v = 97 + noise(rng, 1)       # clearly over
    rows.append((T0 + i * 60_000, "oil_temp", v))
write("threshold_hysteresis", rows, [
    {"id": "oil-hot", "name": "Oil hot", "severity": "critical",
     "when": {"metric": "oil_temp", "detector": "above", "value": 90, "hysteresis": 3}},
    {"id": "oil-cold", "name": "Oil cold", "severity": "info",
     "when": {"metric": "oil_temp", "detector": "below", "value": 50}},
])

# Composite: vibration AND temperature over their limits, held 5 minutes; OR of two metrics.
rng = random.Random(5)
rows = []
for i in range(600):
    ts = T0 + i * 30_000
    vib = 2.0 + noise(rng, 0.2)
    temp = 60 + noise(rng, 1)
    if 100 <= i < 104: vib, temp = 6.0, 85.0        # both, but only 2 minutes: not held
    if 200 <= i < 240: vib = 6.0                      # vibration alone: AND stays off, OR fires
    if 300 <= i < 330: vib, temp = 6.0, 85.0        # both for 15 minutes: AND fires after 5
    rows.append((ts, "vibration_rms", vib))
    rows.append((ts, "spindle_temp", temp))
write("composite_hold", rows, [
    {"id": "bearing-failure", "name": "Vibration and heat", "severity": "critical", "hold": {"secs": 300},
     "when": {"all": [{"metric": "vibration_rms", "detector": "above", "value": 5},
                      {"metric": "spindle_temp", "detector": "above", "value": 80}]}},
    {"id": "anything-off", "name": "Vibration or heat",
     "when": {"any": [{"metric": "vibration_rms", "detector": "above", "value": 5},
                      {"metric": "spindle_temp", "detector": "above", "value": 80}]}},
])

# Default detectors on a degrading bearing: a daily pattern and noise of standard deviation 1, seven quiet
# days, then a drift of +0.5 standard deviations a day for ten days, then five quiet days at the new level.
SIGMA_SCALE = math.sqrt(3)  # uniform noise of half-width sqrt(3) has standard deviation 1
rng = random.Random(6)
rows = []
for i in range(22 * 288):
    day = i / 288
    v = 70 + 3 * math.sin(day * 2 * math.pi) + noise(rng, SIGMA_SCALE)
    v += 0.5 * min(max(day - 7, 0), 10)
    rows.append((T0 + i * 300_000, "bearing_temp", v))
write("drift_slow", rows, [])

# Default detectors on a step: ten days of the same pattern, a lasting step of +6 standard deviations on day 6.
rng = random.Random(7)
rows = []
for i in range(10 * 288):
    day = i / 288
    v = 70 + 3 * math.sin(day * 2 * math.pi) + noise(rng, SIGMA_SCALE)
    if day >= 6.3: v += 6
    rows.append((T0 + i * 300_000, "bearing_temp", v))
write("step_change", rows, [])

# The drift detector on seasonal data with no fault: fourteen days of a strong daily pattern (a shift working
# from 06:00 to 22:00), no alert. (The default context detector raises one alert on day 4 at 22:00 here: its
# level feature does not know the daily pattern, and the shift's end is the largest level change it has seen.)
rng = random.Random(8)
rows = []
for i in range(14 * 288):
    hour = (i % 288) / 12
    v = 40 + (25 if 6 <= hour < 22 else 0) + 4 * math.sin(hour / 24 * 2 * math.pi) + noise(rng, SIGMA_SCALE)
    rows.append((T0 + i * 300_000, "motor_current", v))
write("seasonal_quiet", rows, [
    {"id": "current-drift", "name": "Motor current drifting",
     "when": {"metric": "motor_current", "detector": "drift"}},
])
