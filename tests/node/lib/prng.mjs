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
    // spread the 32-bit seed over the whole state with splitmix32, then warm up
    let s = seed >>> 0
    const splitmix = () => {
      s = (s + 0x9e3779b9) >>> 0
      let z = s
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
      return (z ^ (z >>> 16)) >>> 0
    }
    this.a = splitmix()
    this.b = splitmix()
    this.c = splitmix()
    this.d = splitmix()
    for (let i = 0; i < 20; i++) this.next()
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
