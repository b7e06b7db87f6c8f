// What to undo when the user leaves a page (timers, event streams): pages register, the router runs.

let cleanups = [];

/** Register a function to run when the user leaves the current page (timers, event streams). */
export function onLeave(fn) {
  cleanups.push(fn);
}

/** Run (and forget) every function registered for the page being left; their errors are ignored. */
export function leavePage() {
  cleanups.forEach((fn) => {
    try {
      fn();
    } catch {
      /* ignore */
    }
  });
  cleanups = [];
}
