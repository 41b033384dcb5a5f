import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import qs from 'qs';
import { parseMultipart, type UploadedFile } from './multipart';

/** PHP-compatible bracket parsing: `filter[>ID]=5`, `select[]=ID`, `values[25]=…` stays a list. */
const QS_PARSE: qs.IParseOptions = { depth: 10, arrayLimit: 1000, parameterLimit: 100_000 };
const MAX_BODY = 64 * 1024 * 1024;

export function parseQuery(query: string): Record<string, unknown> {
  return qs.parse(query.replace(/^\?/, ''), QS_PARSE);
}

export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY) chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export interface ParsedRequest {
  params: Record<string, unknown>;
  files: UploadedFile[];
}

/**
 * Query string merged with the body, body winning (PHP's `$_REQUEST`). JSON, urlencoded and
 * multipart bodies are understood; a body that cannot be parsed contributes nothing, as in PHP.
 */
export function parseRequest(query: string, contentType: string | undefined, body: Buffer): ParsedRequest {
  const params = parseQuery(query);
  const type = (contentType ?? '').toLowerCase();
  if (body.length === 0) return { params, files: [] };
  if (type.includes('application/json')) {
    try {
      const json: unknown = JSON.parse(body.toString('utf8'));
      if (json && typeof json === 'object' && !Array.isArray(json)) Object.assign(params, json);
    } catch {
      // Unparseable JSON: PHP sees no parameters.
    }
    return { params, files: [] };
  }
  if (type.includes('multipart/form-data')) {
    const parts = parseMultipart(body, contentType ?? '');
    const fields = parts.fields.map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(value)}`);
    Object.assign(params, parseQuery(fields.join('&')));
    return { params, files: parts.files };
  }
  Object.assign(params, parseQuery(body.toString('utf8')));
  return { params, files: [] };
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

export function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(html) });
  res.end(html);
}

export function redirect(res: ServerResponse, location: string): void {
  res.writeHead(302, { Location: location, 'Content-Length': 0 });
  res.end();
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    // Keep-alive sockets of clients (fetch/undici) would otherwise hold close() open.
    server.closeAllConnections();
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
