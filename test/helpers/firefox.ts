import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const FIREFOX = '/usr/bin/firefox-esr';

/**
 * Opens `url` in headless Firefox ESR with a fresh profile whose NSS database
 * trusts `caFile`, and waits until `reported()` (the page reported back) for up
 * to 40 s. Firefox exiting first, or the deadline, throws with its stderr and
 * `state()`. Firefox (its whole process group) is always ended and the
 * profile removed.
 */
export async function openInFirefox(url: string, caFile: string, reported: () => boolean, state: () => string): Promise<void> {
  assert.ok(existsSync(FIREFOX), `${FIREFOX} is missing: this test needs Debian's Firefox ESR (apt-get install -y firefox-esr); .ci/run installs it`);
  const certutil = ['/usr/bin/certutil', '/bin/certutil'].find((p) => existsSync(p));
  assert.ok(certutil, 'certutil is missing: this test needs libnss3-tools (apt-get install -y libnss3-tools); .ci/run installs it');
  const profile = mkdtempSync(join(tmpdir(), 'switchyard-firefox-'));
  let child: ReturnType<typeof spawn> | undefined;
  let stderr = '';
  try {
    // A fresh NSS database in the profile that trusts the test CA for TLS servers.
    await new Promise<void>((resolve, reject) => {
      execFile(certutil, ['-N', '-d', `sql:${profile}`, '--empty-password'], { timeout: 15_000 }, (err, _o, e) =>
        (err ? reject(new Error(`certutil -N failed: ${err.message} ${e}`)) : resolve()));
    });
    await new Promise<void>((resolve, reject) => {
      execFile(certutil, ['-A', '-n', 'switchyard-test-ca', '-t', 'C,,', '-i', caFile, '-d', `sql:${profile}`], { timeout: 15_000 }, (err, _o, e) =>
        (err ? reject(new Error(`certutil -A failed: ${err.message} ${e}`)) : resolve()));
    });
    writeFileSync(join(profile, 'user.js'), [
      'user_pref("browser.shell.checkDefaultBrowser", false);',
      'user_pref("browser.aboutwelcome.enabled", false);',
      'user_pref("browser.startup.homepage_override.mstone", "ignore");',
      'user_pref("datareporting.policy.dataSubmissionEnabled", false);',
      'user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);',
      'user_pref("app.update.enabled", false);',
      'user_pref("app.normandy.enabled", false);',
      'user_pref("browser.safebrowsing.malware.enabled", false);',
      'user_pref("browser.safebrowsing.phishing.enabled", false);',
      'user_pref("network.captive-portal-service.enabled", false);',
      'user_pref("network.connectivity-service.enabled", false);',
      'user_pref("extensions.autoDisableScopes", 15);',
      'user_pref("network.http.http3.enable", false);',
      'user_pref("security.OCSP.enabled", 0);',
      '',
    ].join('\n'));

    const env: NodeJS.ProcessEnv = { ...process.env, HOME: profile, MOZ_HEADLESS: '1' };
    delete env.DISPLAY;
    delete env.WAYLAND_DISPLAY;
    child = spawn(FIREFOX, ['--headless', '--no-remote', '--profile', profile, url], {
      env, detached: true, stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr?.setEncoding('utf8').on('data', (text: string) => { if (stderr.length < 20_000) stderr += text; });
    const proc = child;
    const deadline = Date.now() + 40_000;
    while (!reported()) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`firefox-esr exited (${proc.exitCode ?? proc.signalCode}) before the page reported; stderr ${JSON.stringify(stderr.slice(-4000))}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`the page in Firefox reported nothing within 40 s; ${state()}; stderr ${JSON.stringify(stderr.slice(-4000))}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    if (child?.pid) {
      // Firefox's content processes share its process group: end the whole group, even if the parent already exited.
      const running = child.exitCode === null && child.signalCode === null;
      const exited = running ? new Promise<void>((resolve) => child!.once('exit', () => resolve())) : Promise.resolve();
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise<void>((resolve) => { timer = setTimeout(resolve, 5_000); })]);
      clearTimeout(timer);
    }
    rmSync(profile, { recursive: true, force: true });
  }
}
