"""anonlib's thin Orthanc plugin for the intake node (placeholder while the job queue lands)."""

import os
import site

site.addsitedir(os.environ["ANONLIB_SITE_PACKAGES"])

import orthanc  # noqa: E402  (provided by Orthanc's Python plugin)

orthanc.LogWarning("anonlib plugin loaded (placeholder)")
