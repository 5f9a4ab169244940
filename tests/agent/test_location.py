"""Reading a location fix from recorded `dumpsys location` (Android) and `gpspipe -w` (gpsd) outputs."""

from datetime import UTC, datetime

import pytest

from agent.errors import HandlerError, ToolFailed
from agent.platforms.location import LocationFix, parse_dumpsys_location, parse_gpsd_reports, parse_uptime

ANDROID_14 = """\
Location Manager State:
  User Info:
    current user: [0]
    visible users: [0]
  Location Setting: true
  Location Providers:
    passive provider:
      last location=Location[gps 52.520008,13.404954 hAcc=4.9 et=+2h3m4s567ms alt=74.2 vAcc=3.1 vel=0.01 \
sAcc=0.4 {Bundle[{satellites=9, maxCn0=38}]}]
      last coarse location=Location[gps 52.518600,13.408200 hAcc=2000.0 et=+2h3m9s0ms]
    network provider [ON]:
      service: ProviderRequest[OFF]
      last location=Location[network 52.521100,13.409900 hAcc=35.0 et=+1h58m0s12ms alt=0.0 \
{Bundle[{networkLocationType=wifi}]}]
    fused provider:
      last location=Location[fused 52.520010,13.404950 hAcc=5.2 et=+2h3m3s900ms alt=74.1 vAcc=3.0]
    gps provider [ON]:
      last location=Location[gps 52.520008,13.404954 hAcc=4.9 et=+2h3m4s567ms alt=74.2 vAcc=3.1]
  Event Log:
    12-06 14:00:01.123: gps provider received location[1] [+2h3m4s567ms]
"""
"""Android 12+: one `last location=` per provider; the gps one is the freshest (et 7384.567 s after boot)."""

ANDROID_11 = """\
Current Location Manager state:
  Last Known Locations:
    passive: Location[fused 48.858370,2.294481 hAcc=12 et=+3d1h0m5s1ms alt=35.0 vel=0.0 bear=0.0 vAcc=4 \
sAcc=??? bAcc=??? {Bundle[mParcelledData.dataSize=96]}]
    network: Location[network 48.857000,2.295000 hAcc=40 et=+3d0h59m0s0ms]
  Last Known Locations Coarse Intervals:
    passive: Location[fused 48.860000,2.300000 hAcc=2000 et=+3d1h10m0s0ms]
  Geofences:
"""
"""Android 11 and older: a `Last Known Locations` section; the coarse intervals below it are blurred and skipped."""

GPSD = """\
{"class":"VERSION","release":"3.22","rev":"3.22","proto_major":3,"proto_minor":14}
{"class":"DEVICES","devices":[{"class":"DEVICE","path":"/dev/ttyACM0","driver":"u-blox","activated":\
"2026-12-06T13:59:58.000Z","flags":1,"native":1,"bps":9600,"parity":"N","stopbits":1,"cycle":1.00}]}
{"class":"WATCH","enable":true,"json":true,"nmea":false,"raw":0,"scaled":false,"timing":false,"split24":false}
{"class":"TPV","device":"/dev/ttyACM0","mode":1,"time":"2026-12-06T14:00:01.000Z","ept":0.005}
{"class":"SKY","device":"/dev/ttyACM0","hdop":1.10,"pdop":1.80,"nSat":12,"uSat":7,"satellites":[{"PRN":5,\
"el":45.0,"az":120.0,"ss":32.0,"used":true}]}
{"class":"TPV","device":"/dev/ttyACM0","status":2,"mode":3,"time":"2026-12-06T14:00:02.000Z","leapseconds":18,\
"ept":0.005,"lat":52.520008000,"lon":13.404954000,"altHAE":74.200,"altMSL":34.100,"epx":3.100,"epy":4.200,\
"epv":7.500,"track":0.0,"speed":0.012,"climb":0.000,"eph":5.900,"sep":9.100}
{"class":"TPV","device":"/dev/ttyACM0","status":2,"mode":3,"time":"2026-12-06T14:00:03.000Z","lat":52.6,"lon":13.5}
"""
NOW = datetime(2026, 12, 6, 14, 0, 32, tzinfo=UTC)


def test_android_12_and_later_give_the_freshest_fine_location() -> None:
    fix = parse_dumpsys_location(ANDROID_14, uptime_s=7400.25)

    assert fix == LocationFix(latitude=52.520008, longitude=13.404954, accuracy_m=4.9, provider="gps", age_s=15.7)


def test_android_11_reads_the_last_known_locations_and_skips_the_coarse_ones() -> None:
    fix = parse_dumpsys_location(ANDROID_11, uptime_s=3 * 86400 + 3600 + 65.001)

    assert fix == LocationFix(latitude=48.85837, longitude=2.294481, accuracy_m=12.0, provider="fused", age_s=60.0)


def test_android_without_an_accuracy_or_with_the_old_acc_field() -> None:
    without = parse_dumpsys_location("  gps: Location[gps 1.000000,2.000000 hAcc=??? et=+5s0ms]\n", uptime_s=10)
    old = parse_dumpsys_location("  gps: Location[gps -33.868820,151.209296 acc=8 et=+1m0s0ms]\n", uptime_s=61)

    assert (without.accuracy_m, without.age_s) == (None, 5.0)
    assert (old.latitude, old.longitude, old.accuracy_m, old.age_s) == (-33.86882, 151.209296, 8.0, 1.0)


@pytest.mark.parametrize(
    "dump",
    [
        "",
        "Location Manager State:\n  gps provider:\n    last location=null\n",
        "  gps provider:\n    last coarse location=Location[gps 52.5186,13.4082 hAcc=2000.0 et=+1s0ms]\n",
    ],
    ids=["empty", "null", "only-coarse"],
)
def test_android_without_a_fix(dump: str) -> None:
    with pytest.raises(HandlerError, match=r"^no location fix$"):
        parse_dumpsys_location(dump, uptime_s=100)


@pytest.mark.parametrize(
    "line",
    [
        "    gps: Location[gps 52,520008,13,404954 acc=5 et=+1h0m0s0ms]",  # a locale's decimal comma
        "    gps: Location[gps 52.520008,13.404954 hAcc=5 et=?!?]",
        "    gps: Location[gps 152.520008,13.404954 hAcc=5 et=+1s0ms]",
    ],
    ids=["comma", "no-elapsed-time", "off-the-globe"],
)
def test_android_locations_that_cannot_be_read_fail_rather_than_say_no_fix(line: str) -> None:
    with pytest.raises(ToolFailed, match=r"^dumpsys location printed a location that cannot be read: "):
        parse_dumpsys_location(line + "\n", uptime_s=7200)


def test_the_uptime_is_the_first_number_of_proc_uptime() -> None:
    assert parse_uptime("7400.25 14000.50\n") == 7400.25
    with pytest.raises(ToolFailed, match="cannot read the uptime"):
        parse_uptime("sh: cat: /proc/uptime: Permission denied\n")


def test_gpsd_gives_the_first_tpv_with_a_fix() -> None:
    fix = parse_gpsd_reports(GPSD, NOW)

    assert fix == LocationFix(latitude=52.520008, longitude=13.404954, accuracy_m=5.9, provider="gpsd", age_s=30.0)


def test_gpsd_before_3_20_has_epx_and_epy_instead_of_eph() -> None:
    report = '{"class":"TPV","mode":2,"time":"2026-12-06T14:00:30Z","lat":1.5,"lon":2.5,"epx":3.1,"epy":4.2}\n'

    fix = parse_gpsd_reports(report, NOW)

    assert (fix.accuracy_m, fix.age_s) == (4.2, 2.0)


def test_gpsd_without_a_time_or_error_estimate() -> None:
    fix = parse_gpsd_reports('{"class":"TPV","mode":2,"lat":1.5,"lon":2.5}\n', NOW)

    assert (fix.latitude, fix.longitude, fix.accuracy_m, fix.age_s) == (1.5, 2.5, None, None)


@pytest.mark.parametrize(
    "output",
    [
        "",
        '{"class":"VERSION","release":"3.22"}\n{"class":"TPV","mode":1}\n{"class":"TPV","mode":0}\n',
        '{"class":"TPV","mode":true,"lat":1.5,"lon":2.5}\n',
        '{"class":"TPV","device":"/dev/ttyACM0","mode":3,"lat":52.5',  # cut short by gpspipe -x
    ],
    ids=["nothing", "no-fix-yet", "mode-not-a-number", "cut-line"],
)
def test_gpsd_without_a_fix(output: str) -> None:
    with pytest.raises(HandlerError, match=r"^no location fix$"):
        parse_gpsd_reports(output, NOW)


@pytest.mark.parametrize(
    "report",
    [
        '{"class":"TPV","mode":3,"lat":"52.5","lon":13.4}',
        '{"class":"TPV","mode":3,"lat":52.5}',
        '{"class":"TPV","mode":3,"lat":91.0,"lon":13.4}',
        '{"class":"TPV","mode":3,"lat":true,"lon":13.4}',
        # An integer no float holds: math.isfinite raised OverflowError, an internal agent error.
        '{"class":"TPV","mode":3,"lat":1' + "0" * 400 + ',"lon":13.4}',
    ],
    ids=["string", "missing-lon", "off-the-globe", "boolean", "huge-integer"],
)
def test_gpsd_fix_without_a_valid_position_fails(report: str) -> None:
    with pytest.raises(ToolFailed, match=r"^gpsd reported a fix without a valid position: "):
        parse_gpsd_reports(report + "\n", NOW)


def test_gpsd_error_estimate_no_float_holds_is_no_estimate() -> None:
    fix = parse_gpsd_reports('{"class":"TPV","mode":2,"lat":1.5,"lon":2.5,"eph":1' + "0" * 400 + "}\n", NOW)

    assert fix.accuracy_m is None


def test_gpsd_fix_at_an_unreadable_time_fails() -> None:
    with pytest.raises(ToolFailed, match=r"^gpsd reported a fix at an unreadable time: 'yesterday'$"):
        parse_gpsd_reports('{"class":"TPV","mode":2,"time":"yesterday","lat":1.5,"lon":2.5}\n', NOW)
