# The app's processes (apps/: click, API, speed layer, archiver, Temporal worker, schedules) share one
# image; docker-compose.yml picks the command per service.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
ENV NODE_ENV=production HOST=0.0.0.0 NODE_OPTIONS=--max-semi-space-size=64
EXPOSE 8080 8081
CMD ["npx", "tsx", "apps/click.ts"]
