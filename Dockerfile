# One image for the operator (`initpipeline run`) and the step runner
# (`initpipeline step ...`). Users build it on a public Python image; the local
# test cluster builds it on a Debian base made by hack/images.sh.
#
# Three stages: `build` installs the package into a venv; `runtime` is the base
# with that venv and without what a running container never reads (docs, man
# pages, apt lists and caches, pip); the final image is `runtime`'s file tree in
# one layer, so that nothing deleted in `runtime` still weighs in a lower layer.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
# Optional: a CA bundle for pip behind a TLS-inspecting proxy, mounted only for
# the build (hack/images.sh passes the host's); unset, pip uses its own.
ARG PIP_CERT
COPY setup.cfg pyproject.toml README.md constraints.txt /src/
COPY operator /src/operator
# The image runs the operator and the steps; neither needs the Kubernetes client, which only the
# command line's status and logs use (the cli extra, on the user's machine). Without it kopf does not
# import it either: 40 MB less memory. constraints.txt pins every package, as for make and CI.
RUN python3 -m venv /opt/initpipeline \
 && /opt/initpipeline/bin/pip install --no-cache-dir --disable-pip-version-check --no-compile \
      -c /src/constraints.txt /src \
 && /opt/initpipeline/bin/pip uninstall -y -q pip setuptools \
 && rm -rf /src \
 && sp=$(echo /opt/initpipeline/lib/python3*/site-packages) \
 # package tests are never read at run time
 && find "$sp" -depth -type d \( -name tests -o -name test \) -exec rm -rf {} + \
 # bytecode once, here: the root filesystem is read-only at run time
 && /opt/initpipeline/bin/python -m compileall -q -j 0 /opt/initpipeline >/dev/null

FROM ${BASE} AS runtime
COPY --from=build /opt/initpipeline /opt/initpipeline
# Docs, apt's lists and caches, and what only building Python programs needs: wheels
# for ensurepip, pydoc's data, lib2to3, and glibc's iconv modules (Python has its own codecs).
RUN rm -rf /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/lintian \
      /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/log/* \
      /root/.cache /tmp/* /usr/share/python-wheels /usr/lib/*-linux-gnu/gconv \
      /usr/lib/python3*/pydoc_data /usr/lib/python3*/lib2to3 \
 && find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} + \
 && { find /usr/lib/python3* /usr/local/lib/python3* -depth -type d -name ensurepip -exec rm -rf {} + \
      2>/dev/null || true; } \
 && echo 'initpipeline:x:65532:65532:initpipeline:/tmp:/usr/sbin/nologin' >>/etc/passwd \
 && echo 'initpipeline:x:65532:' >>/etc/group

FROM scratch
COPY --from=runtime / /
ENV PATH=/opt/initpipeline/bin:/usr/local/bin:/usr/bin:/bin \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# Non-root; the Pod builder and the chart also set runAsUser 65532.
USER 65532:65532
ENTRYPOINT ["initpipeline"]
CMD ["run"]
