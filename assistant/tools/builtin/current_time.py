"""``get_current_time``: the time and date here or in any IANA time zone.

Models often name a city ("Tokyo", "new york") rather than a zone
("Asia/Tokyo"), so a name that is not a zone is looked up as the city part
of one before the call fails.
"""

from __future__ import annotations

import os
import zoneinfo
from datetime import datetime, tzinfo
from functools import lru_cache
from pathlib import Path

from assistant.tools.base import BaseTool, ToolError
from assistant.tools.clock import Clock, SystemClock
from assistant.tools.decorator import FunctionTool


def local_zone_name() -> str:
    """The machine's IANA zone: $TZ, the /etc/localtime link, /etc/timezone, else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        target = ""
    candidates.append(target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else "")
    try:
        candidates.append(Path("/etc/timezone").read_text().strip())
    except OSError:
        pass
    for name in candidates:
        if not name:
            continue
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            continue  # e.g. TZ="EST5EDT,M3.2.0,M11.1.0" or a path: not a name to report
        return name
    return "UTC"


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    """The zones the time zone database publishes: only these names are opened (never a path)."""
    return frozenset(zoneinfo.available_timezones())


@lru_cache(maxsize=1)
def _zones_by_city() -> dict[str, str]:
    zones: dict[str, str] = {}
    for zone in sorted(_zone_names()):
        city = zone.rsplit("/", 1)[-1].replace("_", " ").lower()
        zones.setdefault(city, zone)
    return zones


def resolve_zone(name: str) -> tuple[str, tzinfo]:
    """The zone called ``name``, or the zone of the city ``name``; ``ToolError`` if neither."""
    candidate = name.strip()
    if candidate in _zone_names():
        try:
            return candidate, zoneinfo.ZoneInfo(candidate)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    zone = _zones_by_city().get(candidate.replace("_", " ").lower())
    if zone is None:
        raise ToolError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/London or America/New_York, or a city"
        )
    return zone, zoneinfo.ZoneInfo(zone)


def describe_time(moment: datetime, zone_name: str) -> dict[str, str]:
    """The response shape every room reads: ISO stamp, spoken time, spoken date, zone."""
    hour = moment.hour % 12 or 12
    return {
        "iso": moment.isoformat(timespec="seconds"),
        "time": f"{hour}:{moment:%M} {'AM' if moment.hour < 12 else 'PM'}",
        "date": f"{moment:%A}, {moment.day} {moment:%B %Y}",
        "timezone": zone_name,
    }


class CurrentTime:
    """The ``get_current_time`` tool over an injectable clock and local zone."""

    def __init__(self, clock: Clock | None = None, local_zone: str | None = None) -> None:
        self.clock = clock or SystemClock()
        self.local_zone = local_zone or local_zone_name()

    def get_current_time(self, timezone: str | None = None) -> dict[str, str]:
        """Tell the current time and date, here or in another time zone.

        Args:
            timezone: An IANA time zone such as "Europe/London" or a city such as
                "Tokyo"; leave it out for the user's own time zone.
        """
        zone_name, zone = resolve_zone(timezone or self.local_zone)
        return describe_time(self.clock.now().astimezone(zone), zone_name)

    def tools(self) -> list[BaseTool]:
        return [FunctionTool(self.get_current_time, timeout=5, read_only=True)]
