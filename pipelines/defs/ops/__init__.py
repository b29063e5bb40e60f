"""Operations assets: the published dashboard snapshot at the end of every run."""

from pipelines.defs.ops.assets import make_publish_asset

__all__ = ["make_publish_asset"]
