"""One module of checks per lesson; importing this package registers them all."""

from . import l00_orientation, l01_bottleneck  # noqa: F401
