// imapflow's side of bench/compare.py: one measurement per process, one JSON line on stdout.
//   node imapflow.mjs fetch '{"port": …, "ca": …, "user": …, "password": …, "expect": N}'
//   node --expose-gc imapflow.mjs idle '{"port": …, "ca": …, "user": …, "password": …, "connections": N, "parallel": P}'
// fetch: UID FETCH 1:* (UID FLAGS BODY.PEEK[]) over implicit TLS, timed from the command to the
// last message (login and SELECT not timed), as bench/imap_fetch.py times mailport and imaplib.
// idle: N connections logged in, INBOX selected, IDLE; RSS after one warm-up connection and after all.
import { readFileSync } from 'node:fs';
import { ImapFlow } from 'imapflow';

const [mode, raw] = process.argv.slice(2);
const opts = JSON.parse(raw);
const ca = readFileSync(opts.ca);

function client(extra = {}) {
    return new ImapFlow({
        host: '127.0.0.1',
        port: opts.port,
        secure: true,
        tls: { ca },
        auth: { user: opts.user, pass: opts.password },
        logger: false,
        ...extra
    });
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
const rssKiB = () => Math.round(process.memoryUsage().rss / 1024);
function collect() {
    if (global.gc) {
        global.gc();
        global.gc();
    }
}

async function fetch() {
    const c = client();
    await c.connect();
    await c.mailboxOpen('INBOX');
    const started = process.hrtime.bigint();
    const cpu = process.cpuUsage();
    let count = 0;
    let bytes = 0;
    let last = null;
    for await (const message of c.fetch('1:*', { uid: true, flags: true, source: true }, { uid: true })) {
        count += 1;
        bytes += message.source.length;
        last = message;
    }
    const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
    const used = process.cpuUsage(cpu);
    const cpuSeconds = (used.user + used.system) / 1e6;
    if (count !== opts.expect || !last.uid || !last.flags) {
        throw new Error(`fetched ${count} of ${opts.expect}`);
    }
    await c.logout();
    console.log(JSON.stringify({ elapsed, cpu_s: cpuSeconds, count, bytes, compression: Boolean(c._deflate) }));
}

async function openIdle(clients) {
    const c = client({ disableAutoIdle: true });
    await c.connect();
    await c.mailboxOpen('INBOX');
    c.idle().catch(() => {});
    c.on('error', () => {});
    clients.push(c);
    return c;
}

async function idle() {
    const warm = [];
    await openIdle(warm);
    await sleep(200);
    await warm[0].logout();
    collect();
    await sleep(200);
    collect();
    const before = rssKiB();
    const clients = [];
    const started = Date.now();
    let next = 0;
    const workers = Array.from({ length: opts.parallel }, async () => {
        while (next < opts.connections) {
            next += 1;
            await openIdle(clients);
        }
    });
    await Promise.all(workers);
    const opened = (Date.now() - started) / 1000;
    await sleep(1000);
    collect();
    await sleep(200);
    const after = rssKiB();
    const alive = clients.filter(c => c.usable && c.idling).length;
    console.log(JSON.stringify({ before, after, opened_s: opened, alive, heap_used_kib: Math.round(process.memoryUsage().heapUsed / 1024) }));
    for (const c of clients) {
        c.close();
    }
    await sleep(200);
    process.exit(0);
}

await (mode === 'fetch' ? fetch() : idle());
