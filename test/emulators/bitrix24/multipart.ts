export interface UploadedFile {
  field: string;
  filename: string;
  contentType: string;
  content: Buffer;
}

export interface MultipartBody {
  fields: [string, string][];
  files: UploadedFile[];
}

/** A minimal multipart/form-data reader (RFC 7578): enough for REST fields and `file` uploads. */
export function parseMultipart(body: Buffer, contentType: string): MultipartBody {
  const result: MultipartBody = { fields: [], files: [] };
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType);
  const token = boundary?.[1] ?? boundary?.[2];
  if (!token) return result;
  const delimiter = Buffer.from(`--${token.trim()}`);
  let pos = body.indexOf(delimiter);
  while (pos !== -1) {
    const start = pos + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') break;
    const next = body.indexOf(delimiter, start);
    if (next === -1) break;
    // Each part: CRLF, headers, CRLF CRLF, content, CRLF, next delimiter.
    const part = body.subarray(start + 2, next - 2);
    const split = part.indexOf('\r\n\r\n');
    if (split !== -1) addPart(result, part.subarray(0, split).toString('utf8'), part.subarray(split + 4));
    pos = next;
  }
  return result;
}

function addPart(result: MultipartBody, head: string, content: Buffer): void {
  const disposition = /content-disposition:([^\r\n]*)/i.exec(head)?.[1] ?? '';
  const name = /\bname="([^"]*)"/i.exec(disposition)?.[1];
  if (name === undefined) return;
  const filename = /\bfilename="([^"]*)"/i.exec(disposition)?.[1];
  if (filename === undefined) {
    result.fields.push([name, content.toString('utf8')]);
    return;
  }
  const contentType = /content-type:\s*([^\r\n]*)/i.exec(head)?.[1]?.trim() ?? 'application/octet-stream';
  result.files.push({ field: name, filename, contentType, content: Buffer.from(content) });
}
