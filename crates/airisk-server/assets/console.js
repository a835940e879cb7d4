// airisk approver console: progressive enhancement only. Every flow works without this file.
// Served from the binary under `script-src 'self'`; it adds no inline script or style.
'use strict';

document.addEventListener('DOMContentLoaded', () => {
  // Show each UTC timestamp's local time on hover.
  for (const t of document.querySelectorAll('time[datetime]')) {
    const d = new Date(t.getAttribute('datetime'));
    if (!Number.isNaN(d.getTime())) {
      t.title = `Your local time: ${d.toLocaleString()}`;
    }
  }
  // A decision cannot be sent twice by a double click.
  for (const form of document.querySelectorAll('form[method="post"]')) {
    form.addEventListener('submit', () => {
      for (const b of form.querySelectorAll('button[type="submit"]')) {
        b.disabled = true;
        b.setAttribute('aria-busy', 'true');
      }
    });
  }
  // Coming back with the browser's Back button: the page may be restored with disabled buttons.
  window.addEventListener('pageshow', () => {
    for (const b of document.querySelectorAll('button[aria-busy="true"]')) {
      b.disabled = false;
      b.removeAttribute('aria-busy');
    }
  });
  // After a failed sign-in, put the cursor back in the token field.
  const error = document.getElementById('sign-in-error');
  const token = document.getElementById('token');
  if (error && token) token.focus();
});
