// The peer fourit's benchmark compares against: node-cron 4.6 with `distributed: true` and the
// tick-keyed Redis run coordinator its documentation describes (`SET name:ISO-time node NX PX
// lease`, not released when the run ends). Started by `cargo run --release --example bench`,
// one process per fleet member:
//
//   node peer.mjs --url redis://127.0.0.1:PORT --node NAME --ns NS --jobs N
//                 [--schedule "* * * * * *"] [--hourly-from-minute M] [--lease-ms 30000]
//
// Stdout carries the lines the benchmark reads: `ready` once the tasks are scheduled, then one
// `run JOB TICK_MS START_US NODE` per run, START_US being the host's wall clock (µs) read first
// thing in the job's body. SIGTERM stops the tasks and exits.

import { performance } from 'node:perf_hooks';
import cron from 'node-cron';
import { createClient } from 'redis';

function options() {
  const out = {
    url: '',
    node: `peer-${process.pid}`,
    ns: 'peer',
    jobs: 1,
    schedule: '* * * * * *',
    hourlyFromMinute: null,
    leaseMs: 30000,
  };
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i += 2) {
    const [flag, value] = [args[i], args[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    switch (flag) {
      case '--url': out.url = value; break;
      case '--node': out.node = value; break;
      case '--ns': out.ns = value; break;
      case '--jobs': out.jobs = Number.parseInt(value, 10); break;
      case '--schedule': out.schedule = value; break;
      case '--hourly-from-minute': out.hourlyFromMinute = Number.parseInt(value, 10); break;
      case '--lease-ms': out.leaseMs = Number.parseInt(value, 10); break;
      default: throw new Error(`unknown flag ${flag}`);
    }
  }
  if (!out.url) throw new Error('--url is required');
  return out;
}

// Wall clock in µs: the time origin (wall clock at start, fractional ms) plus the monotonic
// clock. Date.now() alone has only millisecond resolution.
function nowMicros() {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

// Lines are batched and written once per turn of the event loop, off the job's critical path.
let pending = [];
let flushQueued = false;
function emit(line) {
  pending.push(line);
  if (!flushQueued) {
    flushQueued = true;
    setImmediate(() => {
      flushQueued = false;
      const text = pending.join('\n') + '\n';
      pending = [];
      process.stdout.write(text);
    });
  }
}

const opts = options();
const client = createClient({ url: opts.url });
client.on('error', (err) => process.stderr.write(`redis error: ${err}\n`));
await client.connect();

// The coordinator node-cron's documentation gives for Redis: whoever sets the tick's key first
// runs the tick; the key expires after the lease and is not deleted when the run ends.
const coordinator = {
  async shouldRun(key, ttlMs) {
    const reply = await client.set(key, opts.node, {
      condition: 'NX',
      expiration: { type: 'PX', value: ttlMs },
    });
    return reply === 'OK';
  },
};

const tasks = [];
for (let i = 0; i < opts.jobs; i += 1) {
  const job = `job-${i}`;
  const schedule = opts.hourlyFromMinute === null
    ? opts.schedule
    : `${(opts.hourlyFromMinute + (i % 50)) % 60} * * * *`;
  tasks.push(cron.schedule(schedule, (ctx) => {
    const start = nowMicros();
    emit(`run ${job} ${ctx.date.getTime()} ${start} ${opts.node}`);
  }, {
    name: `${opts.ns}-${job}`,
    timezone: 'Etc/UTC',
    distributed: true,
    runCoordinator: coordinator,
    distributedLease: opts.leaseMs,
    noOverlap: true,
  }));
}
process.stdout.write('ready\n');

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  for (const task of tasks) task.destroy();
  try {
    await client.quit();
  } catch {
    // Already closed.
  }
  process.stdout.write(pending.length ? pending.join('\n') + '\n' : '', () => process.exit(0));
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
