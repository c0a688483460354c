# The clipsweep image: API, worker and Ray nodes all run it (one image, different commands).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 CLIPSWEEP_DATA_DIR=/data
WORKDIR /app

# torch first, in its own layer: it is most of the image and changes least often.
ARG TORCH_SPEC="torch>=2.3"
RUN pip install "${TORCH_SPEC}"

COPY pyproject.toml README.md alembic.ini ./
COPY service ./service
COPY trainers ./trainers
COPY migrations ./migrations
RUN pip install .

VOLUME /data
EXPOSE 8000
CMD ["clipsweep", "serve", "--host", "0.0.0.0"]
