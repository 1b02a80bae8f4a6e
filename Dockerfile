# ocpplab in one container: docker build -t ocpplab . && docker run -p 127.0.0.1:8000:8000 ocpplab
# The build stage makes the wheel (templates and static files inside it); the final image
# installs only that wheel, so it holds no source checkout.
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY ocpplab ocpplab
COPY templates templates
COPY static static
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY --from=build /wheels /tmp/wheels
RUN pip install /tmp/wheels/ocpplab-*.whl \
    && rm -r /tmp/wheels \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin ocpplab

USER ocpplab
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('OCPPLAB_PORT', '8000'), timeout=3)"

# Inside the container 0.0.0.0 is right: publish the port on 127.0.0.1 only (see README).
CMD ["ocpplab", "--host", "0.0.0.0"]
