// A real Unleash server for rollbot's tests, configured only from the environment.
//
//   DATABASE_URL            postgres://user@127.0.0.1:PORT/db (required; migrated at first start)
//   HTTP_PORT               port to listen on, on 127.0.0.1 only (default 4242)
//   INIT_ADMIN_API_TOKENS   "*:*.<secret>" admin tokens, read by unleash-server itself
//   INIT_BACKEND_API_TOKENS "default:production.<secret>" backend (SDK) tokens, idem
//   LOG_LEVEL               debug | info | warn | error (default warn)
//   EXIT_ON_STDIN_CLOSE=1   shut down when stdin reaches EOF: the test process holds the
//                           pipe, so a killed pytest cannot leave an orphaned Unleash behind
//
// Nothing here may reach the internet: the version check and telemetry are off (telemetry
// through the environment too, because createConfig reads `options.telemetry || SEND_TELEMETRY`),
// no CDN prefix is set (the UI is served from node_modules, if at all), no addons exist.
// SIGTERM / SIGINT stop it gracefully (unleash-server registers the handlers).
import { LogLevel, start } from 'unleash-server';

if (!process.env.DATABASE_URL) {
  console.error('server.js: DATABASE_URL is required');
  process.exit(2);
}
process.env.SEND_TELEMETRY = 'false';
process.env.CHECK_VERSION = 'false';
delete process.env.CDN_PREFIX;
delete process.env.UNLEASH_VERSION_URL;

const level = process.env.LOG_LEVEL || 'warn';

if (process.env.EXIT_ON_STDIN_CLOSE === '1') {
  // SIGTERM to ourselves: the same graceful shutdown as a normal stop.
  const shutdown = () => process.kill(process.pid, 'SIGTERM');
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}

try {
  await start({
    databaseUrl: process.env.DATABASE_URL,
    db: { ssl: false },
    server: {
      host: '127.0.0.1',
      port: Number(process.env.HTTP_PORT || 4242),
      enableRequestLogger: false,
      gracefulShutdownEnable: true,
    },
    versionCheck: { enable: false },
    telemetry: false,
    logLevel: LogLevel[level] ?? LogLevel.warn,
  });
} catch (err) {
  console.error('server.js: Unleash failed to start:', err);
  process.exit(1);
}
