"""One module of checks per lesson; importing this package registers them all."""

from . import l00_orientation, l01_bottleneck, l02_attention_basics  # noqa: F401
