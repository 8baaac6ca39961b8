"""Writers for a processed session's output folder (manifest, gallery page, clips, thumbnails)."""
