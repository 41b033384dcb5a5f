import { audioType } from './recording-fetcher';

describe('audioType', () => {
  it('recognises wav and mp3 by their bytes', () => {
    expect(audioType(Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4), Buffer.from('WAVEfmt ')]))).toBe('wav');
    expect(audioType(Buffer.from('ID3\u0004\u0000'))).toBe('mp3');
    expect(audioType(Buffer.from([0xff, 0xfb, 0x90, 0x00]))).toBe('mp3');
  });

  it('refuses anything else, whatever it is called', () => {
    expect(audioType(Buffer.from('<html>not found</html>'))).toBeNull();
    expect(audioType(Buffer.from('OggS\u0000\u0002'))).toBeNull();
    expect(audioType(Buffer.alloc(0))).toBeNull();
  });
});
