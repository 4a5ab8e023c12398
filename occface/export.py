"""Compatibility: SavedModel export moved to :mod:`occface.serving`.

Re-exports the names ``occface.export`` had (layout, signatures, cascade policy, self-check);
new code imports them from :mod:`occface.serving`.
"""
from occface.serving.cascade import (KIND_REGIONS, OCCLUSION_REGIONS, REGION_SHARE,
                                     REGION_SPLIT_ROW, make_masked_faces_fn,
                                     normalize_inpaint_policy, occlusion_region,
                                     stored_inpaint_policy)
from occface.serving.check import check_export, run_signatures_in_fresh_process
from occface.serving.layout import (METADATA_FILE, ExportError, existing_versions,
                                    latest_version_dir, read_metadata, resolve_version)
from occface.serving.signatures import ALIGNED_SIZE, export_model, make_embed_fn, make_inpaint_fn

__all__ = ["KIND_REGIONS", "OCCLUSION_REGIONS", "REGION_SHARE", "REGION_SPLIT_ROW",
           "make_masked_faces_fn", "normalize_inpaint_policy", "occlusion_region",
           "stored_inpaint_policy", "check_export", "run_signatures_in_fresh_process",
           "METADATA_FILE", "ExportError", "existing_versions", "latest_version_dir",
           "read_metadata", "resolve_version", "ALIGNED_SIZE", "export_model", "make_embed_fn",
           "make_inpaint_fn"]
