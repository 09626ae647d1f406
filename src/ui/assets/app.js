// Starts the page: asks for the admin token when the API wants one, keeps
// the annealer's status in the header, and hands the address to the router.

import { call, onUnauthorized, setToken, token, waitReasons } from './api.js';
import { replace, throttle } from './dom.js';
import * as live from './live.js';
import { navigate, route, start as startRouter } from './router.js';
import nodes from './views/nodes.js';
import deployments from './views/deployments.js';
import deployment from './views/deployment.js';
import noderole from './views/noderole.js';
import runs from './views/runs.js';

const $ = (id) => document.getElementById(id);

route('/ui/nodes', nodes);
route('/ui/deployments', deployments);
route('/ui/deployments/:name', deployment);
route('/ui/noderoles/:id', noderole);
route('/ui/runs', runs);

let started = false;

/** True when the API accepts the current token (or needs none). */
async function accepted() {
  try {
    await call('GET', '/anneal');
    return true;
  } catch (e) {
    if (e.status === 401) return false;
    throw e;
  }
}

function askForToken(message = '') {
  live.stop();
  $('view').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message;
  $('token').value = '';
  $('token').focus();
}

async function signIn(e) {
  e.preventDefault();
  setToken($('token').value.trim());
  try {
    if (!(await accepted())) {
      setToken('');
      $('login-error').textContent = 'That token was refused. Check auth.admin_token.';
      return;
    }
  } catch (err) {
    $('login-error').textContent = err.message;
    return;
  }
  $('login').hidden = true;
  enter();
}

function enter() {
  $('view').hidden = false;
  $('forget-token').hidden = !token();
  live.start($('live-status'));
  refreshAnneal();
  if (started) {
    navigate(location.pathname + location.search, { replace: true });
  } else {
    started = true;
    startRouter($('view'));
  }
}

/** The annealer's status in the header: settled, or what is still to do. */
async function refreshAnneal() {
  const el = $('anneal-status');
  try {
    const { status, body } = await call('GET', '/anneal');
    const c = body.counts ?? {};
    const parts = [];
    if (status === 202 || !body.settled) {
      parts.push(`Annealing: ${c.todo ?? 0} to do, ${c.transition ?? 0} in transition`);
      el.dataset.mode = 'busy';
    } else {
      parts.push('Settled');
      el.dataset.mode = 'settled';
    }
    if (c.error) {
      parts.push(`${c.error} in error`);
      el.dataset.mode = 'error';
    }
    if (c.blocked) parts.push(`${c.blocked} blocked`);
    const reasons = waitReasons(body);
    if (reasons.length) parts.push(`waiting: ${reasons.map(([label, n]) => `${n} ${label}`).join(', ')}`);
    replace(el, parts.join(' · '));
  } catch (e) {
    if (e.status !== 401) replace(el, 'Annealer status unavailable');
  }
}

const refreshAnnealSoon = throttle(refreshAnneal, 500);
live.subscribe((fact) => {
  if (fact.fact !== 'node_created') refreshAnnealSoon();
});

onUnauthorized(() => {
  setToken('');
  askForToken('The token was refused. Enter it again.');
});

$('login-form').addEventListener('submit', signIn);
$('forget-token').addEventListener('click', () => {
  setToken('');
  askForToken();
});

(async () => {
  try {
    if (await accepted()) enter();
    else askForToken();
  } catch (e) {
    askForToken(e.message);
  }
})();
