// Binding a unix socket path safely: never over a live server, and a dead one's file removed.
import * as fs from 'node:fs';
import * as net from 'node:net';

/** Throws when a live server answers on the socket; returns whether a (dead) socket file is there. */
export async function refuseLiveSocket(socket: string): Promise<boolean> {
  if (!fs.existsSync(socket)) return false;
  const alive = await new Promise<boolean>((resolve) => {
    const c = net.connect(socket);
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
  if (alive) throw new Error(`another process is serving ${socket}; stop it first`);
  return true;
}

/** Refuses to start over a live server; removes a socket file a dead one left behind. */
export async function clearStaleSocket(socket: string): Promise<void> {
  if (await refuseLiveSocket(socket)) fs.unlinkSync(socket);
}
