// Seeded PRNG (sfc32) so that a failing run can be replayed with SEED=….

/** The seed for this test file: $SEED if set, else random. Printed so a run can be replayed. */
export function seedFromEnv (label = 'seed') {
  const seed = process.env.SEED !== undefined && process.env.SEED !== ''
    ? Number.parseInt(process.env.SEED, 10) >>> 0
    : (Math.random() * 2 ** 32) >>> 0
  console.log(label, seed)
  return seed
}

export class Prng {
  constructor (seed) {
    this.a = 0x9e3779b9
    this.b = 0x243f6a88
    this.c = 0xb7e15162
    this.d = seed >>> 0
    for (let i = 0; i < 15; i++) this.next()
  }

  /** uniform in [0, 1) */
  next () {
    let { a, b, c, d } = this
    a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0
    const t = (((a + b) >>> 0) + d) >>> 0
    d = (d + 1) >>> 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) >>> 0
    c = ((c << 21) | (c >>> 11)) >>> 0
    c = (c + t) >>> 0
    Object.assign(this, { a, b, c, d })
    return t / 4294967296
  }

  /** integer in [min, max] */
  int (min, max) { return min + Math.floor(this.next() * (max - min + 1)) }
  bool (p = 0.5) { return this.next() < p }
  pick (arr) { return arr[Math.floor(this.next() * arr.length)] }
  word (min = 1, max = 6) {
    const letters = 'abcdefghijklmnopqrstuvwxyz'
    let s = ''
    for (let n = this.int(min, max); n > 0; n--) s += letters[Math.floor(this.next() * 26)]
    return s
  }

  /** an independent generator derived from this one (e.g. one per client) */
  fork () { return new Prng((this.next() * 2 ** 32) >>> 0) }
}
