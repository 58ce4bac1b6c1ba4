# One image for the operator (`initpipeline run`) and the step runner
# (`initpipeline step ...`). Users build it on a public Python image; the local
# test cluster builds it on a Debian base made by hack/images.sh.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ENV PATH=/opt/initpipeline/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp

# Optional: a CA bundle for pip behind a TLS-inspecting proxy, mounted only for
# the build (hack/images.sh passes the host's); unset, pip uses its own.
ARG PIP_CERT
COPY setup.cfg pyproject.toml README.md /src/
COPY operator /src/operator
RUN python3 -m venv /opt/initpipeline \
 && /opt/initpipeline/bin/pip install --no-cache-dir --disable-pip-version-check /src \
 && rm -rf /src \
 && echo 'initpipeline:x:65532:65532:initpipeline:/tmp:/usr/sbin/nologin' >>/etc/passwd \
 && echo 'initpipeline:x:65532:' >>/etc/group

# Non-root; the Pod builder and the chart also set runAsUser 65532.
USER 65532:65532
ENTRYPOINT ["initpipeline"]
CMD ["run"]
