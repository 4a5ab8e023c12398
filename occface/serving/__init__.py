"""Serving: TF-Serving-ready SavedModel exports of occface models (the floor above models).

* :mod:`~occface.serving.layout` — ``export_dir/<version>/`` folders, their metadata, atomic and
  world-readable publishing (:func:`resolve_version`, :func:`publish_version`);
* :mod:`~occface.serving.signatures` — the ``embed`` / ``verify`` / ``inpaint`` /
  ``verify_masked`` signatures and :func:`export_model`;
* :mod:`~occface.serving.cascade` — occlusion regions and the per-region inpainting policy;
* :mod:`~occface.serving.check` — the fresh-process self-check (:func:`check_export`);
* :mod:`~occface.serving.publish` — what ``tools/export.py`` does (:func:`run_export`).

Nothing below this package imports it; loaders read exports through :mod:`occface.models.io`.
"""
from occface.serving.cascade import (KIND_REGIONS, OCCLUSION_REGIONS, REGION_SHARE,
                                     REGION_SPLIT_ROW, cascade_policy, make_masked_faces_fn,
                                     normalize_inpaint_policy, occlusion_region, region_policy,
                                     stored_inpaint_policy)
from occface.serving.check import check_export, run_signatures_in_fresh_process
from occface.serving.layout import (METADATA_FILE, ExportError, existing_versions,
                                    latest_version_dir, make_world_readable, publish_version,
                                    read_metadata, resolve_version)
from occface.serving.publish import calibrate_threshold, lfw_pair_faces, run_export, sample_faces
from occface.serving.signatures import (ALIGNED_SIZE, export_model, make_embed_fn,
                                        make_inpaint_fn, model_input_size)

__all__ = ["KIND_REGIONS", "OCCLUSION_REGIONS", "REGION_SHARE", "REGION_SPLIT_ROW",
           "cascade_policy", "make_masked_faces_fn", "normalize_inpaint_policy",
           "occlusion_region", "region_policy", "stored_inpaint_policy", "check_export",
           "run_signatures_in_fresh_process", "METADATA_FILE", "ExportError", "existing_versions",
           "latest_version_dir", "make_world_readable", "publish_version", "read_metadata",
           "resolve_version", "calibrate_threshold", "lfw_pair_faces", "run_export",
           "sample_faces", "ALIGNED_SIZE", "export_model", "make_embed_fn", "make_inpaint_fn",
           "model_input_size"]
