// Help texts of the web UI: the glossary of settings. (What each generator kind is good for comes
// from the server: GET /api/kinds, field "description".)

/** What the parameters mean, for the tutorial. */
export const GLOSSARY = [
  ['Steps', 'Training steps: how many batches of your images the generator learns from. More steps = better images and longer training.'],
  ['Quality preset', '“Quick look” trains small networks for a few minutes to show what a kind can do; “Standard” and “Best quality” take longer and look better. The train page shows the time each takes on this server before you start.'],
  ['Guidance scale', 'Diffusion that knows the classes: how strongly each image is pushed towards its class. 1 = no extra push; 2–5 gives more typical, less varied images.'],
  ['Strength', 'Variations of your own images: how far a generated image may move away from the real image it starts from. Small (0.2–0.4) = subtle variations; 1 = a completely new image.'],
  ['Images per class', 'How many new images to make for every class. “Balance classes” instead tops up the smaller classes to the size of the largest.'],
  ['Seed', 'A number that fixes the randomness: the same model, settings and seed give the same images again. Leave it empty for new images every time.'],
  ['Image size', 'Uploaded images are resized to this square size (pixels) before training. Small sizes (28–64) train much faster.'],
  ['Augmented copies', 'Adds that many flipped, cropped and recoloured copies of each image before training: helps generators when you have few images.'],
];
