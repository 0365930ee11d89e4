# Intake Orthanc node: the official orthancteam/orthanc image plus anonlib, installed in a venv
# for the Python interpreter that the image's Python plugin embeds.
#
# Build context: the repository root (docker-compose.yml sets it); the files sent are limited by
# orthanc-intake.Dockerfile.dockerignore.
#
# Why a venv: from 24.3.3 to 25.2.0 the image is Debian bookworm based and its Python plugin
# embeds the system Python 3.11 (release notes: "upgraded base image to debian:bookworm...;
# python has been upgraded to 3.11"; later tags move to Ubuntu noble and Python 3.12). The venv
# is made with the image's own python3, so its ABI matches whatever tag is used, and the check
# below refuses to build if the plugin is linked against another libpython.
# The plugin script calls site.addsitedir($ANONLIB_SITE_PACKAGES) first thing; the path set
# here is a fixed symlink to the venv's site-packages, whatever the Python version.
ARG ORTHANC_IMAGE=orthancteam/orthanc:25.2.0
FROM ${ORTHANC_IMAGE}

RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3-venv \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml README.md /tmp/anonlib-src/
COPY anonlib /tmp/anonlib-src/anonlib

RUN python3 -m venv /opt/anonlib/venv \
 && /opt/anonlib/venv/bin/pip install --no-cache-dir /tmp/anonlib-src \
 && rm -rf /tmp/anonlib-src \
 && ln -s "$(/opt/anonlib/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
          /opt/anonlib/site-packages \
 && /opt/anonlib/venv/bin/python -c 'import anonlib, pydicom, psycopg2; print("anonlib", anonlib.__version__)'

# The Python plugin must embed the same Python version as the venv's (same ABI).
RUN set -e; \
    want="libpython$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"; \
    for dir in /usr/share/orthanc/plugins-available /usr/share/orthanc/plugins-disabled /usr/share/orthanc/plugins; do \
      so="$dir/libOrthancPython.so"; \
      if [ -f "$so" ]; then \
        got="$(ldd "$so" | grep -o 'libpython3\.[0-9]*' | head -n 1 || true)"; \
        echo "Python plugin $so links ${got:-no shared libpython}; venv uses $want"; \
        if [ -n "$got" ] && [ "$got" != "$want" ]; then exit 1; fi; \
        exit 0; \
      fi; \
    done; \
    echo "libOrthancPython.so not found in the image" >&2; exit 1

ENV ANONLIB_SITE_PACKAGES=/opt/anonlib/site-packages \
    TCP_NODELAY=1
