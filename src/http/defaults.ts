/** Where a server listens by default and the file it leaves its address in (light: agentctl imports it). */
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 7070;
/** `$AGENT9_HOME/server.json`: `{url, pid, started_at}` of the running server. */
export const SERVER_FILE = 'server.json';
