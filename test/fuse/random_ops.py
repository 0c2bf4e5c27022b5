"""Random read/write/truncate/mmap operations on one file against a model (a bytearray).

Usage: random_ops.py PATH OPS SEED. Every read, through a descriptor or a shared mapping, is compared
with the model; the whole file is compared every 250 operations, through a second descriptor and after
close and reopen. Prints `ok <ops> <size> <sha256>` and exits 0, or prints the first difference and
exits 1. Used by test/fuse/random-verifier.test.ts on each kind of mount.
"""
import hashlib
import mmap
import os
import random
import sys

path, ops, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(seed)
MAX = 384 * 1024
model = bytearray()
fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)


def fail(op, what):
    print(f'MISMATCH at op {op}: {what}', flush=True)
    sys.exit(1)


def compare_all(op, where, f):
    os.lseek(f, 0, 0)
    got = b''
    while True:
        chunk = os.read(f, 1 << 20)
        if not chunk:
            break
        got += chunk
    if got != bytes(model):
        first = next((i for i in range(min(len(got), len(model))) if got[i] != model[i]), min(len(got), len(model)))
        fail(op, f'{where}: size {len(got)} vs model {len(model)}, first difference at {first}')
    if os.fstat(f).st_size != len(model):
        fail(op, f'{where}: fstat size {os.fstat(f).st_size} vs model {len(model)}')


for op in range(ops):
    r = rnd.random()
    if r < 0.35:
        off = rnd.randrange(0, MAX)
        data = rnd.randbytes(rnd.randrange(1, 70000))
        if os.pwrite(fd, data, off) != len(data):
            fail(op, 'short write')
        if off > len(model):
            model.extend(b'\0' * (off - len(model)))
        model[off:off + len(data)] = data
    elif r < 0.6:
        off = rnd.randrange(0, MAX + 1000)
        n = rnd.randrange(1, 140000)
        got = os.pread(fd, n, off)
        if got != bytes(model[off:off + n]):
            fail(op, f'pread {n} at {off}: {len(got)} bytes, model has {len(model[off:off + n])}')
    elif r < 0.7:
        size = rnd.randrange(0, MAX)
        os.ftruncate(fd, size)
        if size < len(model):
            del model[size:]
        else:
            model.extend(b'\0' * (size - len(model)))
    elif r < 0.85 and len(model) > 0:
        # A shared mapping of the whole file: write a piece through it, read another back.
        m = mmap.mmap(fd, len(model), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        off = rnd.randrange(0, len(model))
        data = rnd.randbytes(min(rnd.randrange(1, 20000), len(model) - off))
        m[off:off + len(data)] = data
        model[off:off + len(data)] = data
        a = rnd.randrange(0, len(model))
        b = min(len(model), a + rnd.randrange(1, 50000))
        if m[a:b] != bytes(model[a:b]):
            fail(op, f'mapped read {a}..{b}')
        if rnd.random() < 0.5:
            m.flush()
        m.close()
    elif r < 0.9:
        os.fsync(fd)
    elif r < 0.95:
        # Another descriptor sees what this one wrote (the same mount's page cache and the server's held writes).
        other = os.open(path, os.O_RDONLY)
        a = rnd.randrange(0, MAX)
        if os.pread(other, 65536, a) != bytes(model[a:a + 65536]):
            fail(op, f'second descriptor at {a}')
        os.close(other)
    else:
        os.close(fd)
        fd = os.open(path, os.O_RDWR)
    if op % 250 == 249:
        compare_all(op, 'whole file', fd)

os.close(fd)
fd = os.open(path, os.O_RDONLY)
compare_all(ops, 'after reopening', fd)
os.close(fd)
print(f'ok {ops} {len(model)} {hashlib.sha256(model).hexdigest()}', flush=True)
