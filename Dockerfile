FROM python:3.11-slim
WORKDIR /srv/questline
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY app ./app
COPY models ./models
COPY schema ./schema
COPY resolvers ./resolvers
COPY migrations ./migrations
COPY frontend-demo ./frontend-demo
RUN pip install --no-cache-dir .
EXPOSE 8000
CMD ["questline", "serve", "--no-migrate", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
