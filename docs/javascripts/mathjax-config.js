// MathJax 3 (vendored as tex-svg.js, Apache-2.0: MATHJAX-LICENSE), configured for
// pymdownx.arithmatex's generic output (\(...\), \[...\]) in pages and docstrings, and the
// raw $...$ / $$...$$ of the notebooks' Markdown cells (mkdocs-jupyter leaves those as text).
// Code (pre, code) is never typeset.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
};
document$.subscribe(() => {
  if (window.MathJax && MathJax.typesetPromise) {
    MathJax.startup.output.clearCache();
    MathJax.typesetClear();
    MathJax.texReset();
    MathJax.typesetPromise();
  }
});
