// Home: the tutorial.

import * as api from '../api.js';
import { add, code, h, replace } from '../dom.js';
import { imageTypesText } from '../files.js';
import { tokenExplanation } from '../token.js';
import { GLOSSARY, getKinds, left, loadImage, messageOf, pageHeading } from '../shared.js';

export async function homePage(view, { alive }) {
  const kindsList = h('dl', { class: 'kinds', id: 'kinds-list', 'data-testid': 'kinds-list' });
  const examples = h('div', { class: 'grid-examples', id: 'example-grids', 'data-testid': 'example-grids' },
    h('p', { class: 'muted' }, 'Loading examples…'));
  add(view,
    pageHeading('More training data from a few labelled images'),
    h('section', { class: 'tutorial', 'aria-labelledby': 'how-title', 'data-testid': 'tutorial' },
      h('p', { class: 'lead' }, 'genaug learns what your images look like and makes new ones for every class, so a classifier has more to learn from. You do not need to know how GANs or diffusion work: pick a generator, upload images, download results.'),
      h('h2', { id: 'how-title' }, 'How it works, in 4 steps'),
      h('p', { 'data-testid': 'home-token' }, h('strong', {}, 'Before you start: '), ...tokenExplanation()),
      h('ol', { class: 'steps' },
        h('li', {}, h('strong', {}, 'Upload images. '), 'One folder per class (for example ', code('cats/'), ' and ', code('dogs/'), `), or a zip of such folders. Accepted images: ${imageTypesText()}.`),
        h('li', {}, h('strong', {}, 'Train a generator. '), 'Choose a kind (see below) and start training on the ', h('a', { href: '#/train' }, 'Train'), ' page. You can watch its progress and sample images live.'),
        h('li', {}, h('strong', {}, 'Generate images. '), 'On the ', h('a', { href: '#/generate' }, 'Generate'), ' page, pick a trained model, say how many images per class, and download them as a zip (with a manifest of where each image came from).'),
        h('li', {}, h('strong', {}, 'Evaluate (optional). '), 'The ', h('a', { href: '#/evaluate' }, 'Evaluate'), ' page trains a classifier with and without the synthetic images, over several seeds, and tells you whether they help and by how much.'))),
    h('section', { 'aria-labelledby': 'kinds-title' },
      h('h2', { id: 'kinds-title' }, 'Which generator?'),
      kindsList),
    h('section', { 'aria-labelledby': 'params-title' },
      h('h2', { id: 'params-title' }, 'What the settings mean'),
      h('dl', { class: 'glossary', 'data-testid': 'glossary' }, GLOSSARY.map(([term, text]) => [h('dt', {}, term), h('dd', {}, text)]))),
    h('section', { 'aria-labelledby': 'examples-title' },
      h('h2', { id: 'examples-title' }, 'Examples from trained models'),
      examples),
  );

  try {
    const kinds = await getKinds();
    if (!alive()) return;
    replace(kindsList, kinds.map((k) => [
      h('dt', {}, code(k.kind), k.data_kind && k.data_kind !== 'images' ? h('span', { class: 'muted' }, ` (${k.data_kind})`) : null),
      h('dd', {}, k.description || k.summary || ''),
    ]));
  } catch (error) {
    if (!alive()) return left(error);
    if (error.status === 401) {
      error.shown = true;
      replace(kindsList, h('p', { class: 'muted' }, 'The generator kinds appear here once your API token is saved (see “Before you start” above).'));
    } else replace(kindsList, h('p', { class: 'muted' }, `The server's list of kinds could not load: ${messageOf(error)}`));
  }

  try {
    const models = (await api.get('/api/models')) || [];
    if (!alive()) return;
    const ready = models.filter((m) => !m.status || m.status === 'ready').slice(0, 3);
    if (!ready.length) {
      replace(examples, h('p', {}, 'No trained models yet. ', h('a', { href: '#/train' }, 'Train the first one'), ' and its sample images will appear here.'));
      return;
    }
    replace(examples, ready.map((m) => {
      const img = h('img', { alt: `Sample images from model ${m.name} (${m.kind})`, loading: 'lazy', 'data-testid': 'example-grid' });
      const fig = h('figure', { class: 'example' }, img,
        h('figcaption', {}, h('a', { href: `#/generate/${encodeURIComponent(m.name)}` }, m.name), ` · ${m.kind}`,
          m.class_names ? ` · ${m.class_names.length} classes` : ''));
      loadImage(img, `/api/models/${encodeURIComponent(m.name)}/grid.png`, {
        onMissing: () => img.replaceWith(h('p', { class: 'muted' }, 'No sample grid')),
      });
      return fig;
    }));
  } catch (error) {
    if (!alive()) return left(error);
    if (error.status === 401) error.shown = true;  // explained once, above
    replace(examples, h('p', { class: 'muted' }, error.status === 401 ? 'Examples appear here once your API token is saved.' : `Examples could not load: ${messageOf(error)}`));
  }
}
