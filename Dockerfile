FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY agentqueue ./agentqueue
RUN pip install --no-cache-dir ".[postgres,flower]"
RUN useradd --create-home agentqueue
USER agentqueue
ENV AGENTQUEUE_DATA_DIR=/home/agentqueue/data
CMD ["agentqueue", "worker"]
