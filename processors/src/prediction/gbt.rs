//! Gradient-boosted regression trees, small and deterministic: histogram splits (at most 256 bins per
//! feature), depth-limited trees, shrinkage, seeded row and feature subsampling, and two losses: squared
//! error for the point estimate and the pinball loss for quantiles (the prediction interval).
//!
//! Written here rather than taken from a crate: of the Rust gradient-boosting crates, `gbdt` has had no
//! release since 2022 and has no quantile loss, `smartcore` and `linfa` offer forests but no boosting, and
//! `lightgbm`/`xgboost` bind C++ libraries. This is about 300 lines we can read, test and serialise.

use serde::{Deserialize, Serialize};

/// What a model minimises.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Loss {
    /// Squared error: the conditional mean.
    Squared,
    /// Pinball loss at this level: the conditional quantile (0.1 gives the 10th percentile).
    Quantile(f64),
}

/// How the trees are grown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Boosting rounds.
    pub trees: usize,
    /// Shrinkage applied to every tree.
    pub learning_rate: f64,
    /// Deepest split level.
    pub max_depth: usize,
    /// Fewest training rows in a leaf.
    pub min_leaf: usize,
    /// Share of rows each tree sees.
    pub subsample: f64,
    /// Share of features each tree may split on.
    pub colsample: f64,
    /// L2 penalty on leaf values (squared loss).
    pub lambda: f64,
    /// Seed of the subsampling.
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            trees: 300,
            learning_rate: 0.05,
            max_depth: 5,
            min_leaf: 20,
            subsample: 0.7,
            colsample: 0.7,
            lambda: 1.0,
            seed: 13,
        }
    }
}

/// A tree node; the root is node 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Node {
    /// A leaf and its contribution.
    Leaf(f64),
    /// `x[feature] <= threshold` goes to `left`. `value` is what the tree would add had it stopped here,
    /// which lets a prediction be explained feature by feature.
    Split {
        /// Feature index.
        feature: u32,
        /// Split point.
        threshold: f64,
        /// Node index of the `<=` side.
        left: u32,
        /// Node index of the `>` side.
        right: u32,
        /// The node's own value.
        value: f64,
    },
}

/// One regression tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Nodes, root first.
    pub nodes: Vec<Node>,
}

impl Tree {
    fn value(&self, i: usize) -> f64 {
        match self.nodes[i] {
            Node::Leaf(v) | Node::Split { value: v, .. } => v,
        }
    }

    /// The tree's output for one row.
    pub fn predict(&self, x: &[f64]) -> f64 {
        let mut i = 0;
        loop {
            match self.nodes[i] {
                Node::Leaf(v) => return v,
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                    ..
                } => {
                    i = if x[feature as usize] <= threshold {
                        left
                    } else {
                        right
                    } as usize
                }
            }
        }
    }

    /// Adds to `out[feature]` how much each split on the row's path moved the output (Saabas'
    /// attribution); returns the root's value.
    fn explain(&self, x: &[f64], out: &mut [f64]) -> f64 {
        let mut i = 0;
        while let Node::Split {
            feature,
            threshold,
            left,
            right,
            value,
        } = self.nodes[i]
        {
            let next = if x[feature as usize] <= threshold {
                left
            } else {
                right
            } as usize;
            out[feature as usize] += self.value(next) - value;
            i = next;
        }
        self.value(0)
    }
}

/// A boosted ensemble: `base` plus the sum of its trees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gbt {
    /// The loss it was trained on.
    pub loss: Loss,
    /// The starting value (the mean of the target).
    pub base: f64,
    /// The trees, shrinkage already applied to their values.
    pub trees: Vec<Tree>,
}

impl Gbt {
    /// The model's output for one row.
    pub fn predict(&self, x: &[f64]) -> f64 {
        self.base + self.trees.iter().map(|t| t.predict(x)).sum::<f64>()
    }

    /// Each feature's share of the prediction relative to the average one (they add up to the prediction
    /// minus the model's average output).
    pub fn explain(&self, x: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; x.len()];
        for t in &self.trees {
            t.explain(x, &mut out);
        }
        out
    }

    /// Trains on `data` towards `y`.
    pub fn fit(data: &Dataset, y: &[f64], loss: Loss, params: &Params) -> Self {
        let n = data.rows.len();
        // Every loss starts at the mean. Starting a quantile model at its own quantile can stall it: with a
        // capped target the 90th percentile is the cap, every row then has the same gradient (-0.1), no
        // split gains anything and no tree moves the model.
        let base = y.iter().sum::<f64>() / n.max(1) as f64;
        let mut f = vec![base; n];
        let mut gradient = vec![0.0; n];
        let mut trees = Vec::with_capacity(params.trees);
        let features = data.columns.len();
        for t in 0..params.trees {
            let mut rng =
                SplitMix64(params.seed ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut rows: Vec<u32> = (0..n as u32)
                .filter(|_| rng.unit() < params.subsample)
                .collect();
            let mut allowed: Vec<usize> = (0..features)
                .filter(|_| rng.unit() < params.colsample)
                .collect();
            if allowed.is_empty() {
                allowed.push(rng.below(features));
            }
            for (i, g) in gradient.iter_mut().enumerate() {
                *g = match loss {
                    Loss::Squared => y[i] - f[i],
                    // The negative gradient of the pinball loss.
                    Loss::Quantile(q) => {
                        if y[i] > f[i] {
                            q
                        } else {
                            q - 1.0
                        }
                    }
                };
            }
            let mut grower = Grower {
                data,
                gradient: &gradient,
                residual: (y, &f),
                loss,
                params,
                allowed: &allowed,
                nodes: Vec::new(),
            };
            grower.grow(&mut rows, 0);
            let tree = Tree {
                nodes: grower.nodes,
            };
            for (i, fi) in f.iter_mut().enumerate() {
                *fi += tree.predict(&data.rows[i]);
            }
            trees.push(tree);
        }
        Self { loss, base, trees }
    }
}

/// Training rows, raw and binned.
#[derive(Debug)]
pub struct Dataset {
    /// Row-major values.
    pub rows: Vec<Vec<f64>>,
    /// Per feature, the split candidates (at most 255).
    cuts: Vec<Vec<f64>>,
    /// Per feature, each row's bin: the number of cuts below its value.
    columns: Vec<Vec<u8>>,
}

impl Dataset {
    /// Bins every feature at (up to 255) quantiles of its values.
    pub fn new(rows: Vec<Vec<f64>>) -> Self {
        let features = rows.first().map_or(0, Vec::len);
        let mut cuts = Vec::with_capacity(features);
        let mut columns = Vec::with_capacity(features);
        for j in 0..features {
            let mut values: Vec<f64> = rows.iter().map(|r| r[j]).collect();
            values.sort_by(f64::total_cmp);
            let mut distinct = values.clone();
            distinct.dedup();
            let c: Vec<f64> = if distinct.len() <= 256 {
                distinct.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect()
            } else {
                let mut c: Vec<f64> = (1..256).map(|q| values[q * values.len() / 256]).collect();
                c.dedup();
                c
            };
            columns.push(
                rows.iter()
                    .map(|r| c.partition_point(|&cut| cut < r[j]) as u8)
                    .collect(),
            );
            cuts.push(c);
        }
        Self {
            rows,
            cuts,
            columns,
        }
    }
}

struct Grower<'a> {
    data: &'a Dataset,
    gradient: &'a [f64],
    residual: (&'a [f64], &'a [f64]),
    loss: Loss,
    params: &'a Params,
    allowed: &'a [usize],
    nodes: Vec<Node>,
}

impl Grower<'_> {
    fn leaf_value(&self, rows: &[u32]) -> f64 {
        let lr = self.params.learning_rate;
        match self.loss {
            Loss::Squared => {
                let g: f64 = rows.iter().map(|&r| self.gradient[r as usize]).sum();
                lr * g / (rows.len() as f64 + self.params.lambda)
            }
            Loss::Quantile(q) => {
                let (y, f) = self.residual;
                let mut r: Vec<f64> = rows
                    .iter()
                    .map(|&r| y[r as usize] - f[r as usize])
                    .collect();
                lr * quantile(&mut r, q)
            }
        }
    }

    fn grow(&mut self, rows: &mut [u32], depth: usize) -> u32 {
        let index = self.nodes.len() as u32;
        let value = self.leaf_value(rows);
        self.nodes.push(Node::Leaf(value));
        if depth >= self.params.max_depth || rows.len() < 2 * self.params.min_leaf {
            return index;
        }
        let Some((feature, bin)) = self.best_split(rows) else {
            return index;
        };
        let column = &self.data.columns[feature];
        let mut split = 0;
        for i in 0..rows.len() {
            if column[rows[i] as usize] <= bin {
                rows.swap(i, split);
                split += 1;
            }
        }
        let (l, r) = rows.split_at_mut(split);
        let left = self.grow(l, depth + 1);
        let right = self.grow(r, depth + 1);
        self.nodes[index as usize] = Node::Split {
            feature: feature as u32,
            threshold: self.data.cuts[feature][bin as usize],
            left,
            right,
            value,
        };
        index
    }

    /// The feature and bin whose split most reduces the squared error of the gradients.
    fn best_split(&self, rows: &[u32]) -> Option<(usize, u8)> {
        let lambda = self.params.lambda;
        let min = self.params.min_leaf;
        let total: f64 = rows.iter().map(|&r| self.gradient[r as usize]).sum();
        let n = rows.len();
        let parent = total * total / (n as f64 + lambda);
        let mut best: Option<(f64, usize, u8)> = None;
        let mut hist = [(0.0f64, 0usize); 256];
        for &feature in self.allowed {
            let cuts = self.data.cuts[feature].len();
            if cuts == 0 {
                continue;
            }
            hist[..=cuts].fill((0.0, 0));
            let column = &self.data.columns[feature];
            for &r in rows {
                let h = &mut hist[column[r as usize] as usize];
                h.0 += self.gradient[r as usize];
                h.1 += 1;
            }
            let (mut gl, mut nl) = (0.0, 0usize);
            for (bin, &(g, c)) in hist[..cuts].iter().enumerate() {
                gl += g;
                nl += c;
                let nr = n - nl;
                if nl < min || nr < min {
                    continue;
                }
                let gr = total - gl;
                let gain = gl * gl / (nl as f64 + lambda) + gr * gr / (nr as f64 + lambda) - parent;
                if gain > 1e-9 && best.is_none_or(|b| gain > b.0) {
                    best = Some((gain, feature, bin as u8));
                }
            }
        }
        best.map(|(_, f, b)| (f, b))
    }
}

/// The `q` quantile of `values` (reordered in place); 0 for none.
pub fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let k = ((values.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    let (_, v, _) = values.select_nth_unstable_by(k, f64::total_cmp);
    *v
}

/// A small seeded generator (SplitMix64): the same seed gives the same model on every platform and
/// with every version of `rand`.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n); 0 when n is 0.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn data(n: usize) -> (Dataset, Vec<f64>) {
        let mut rng = SplitMix64(7);
        let rows: Vec<Vec<f64>> = (0..n)
            .map(|_| vec![rng.unit() * 10.0, rng.unit()])
            .collect();
        // y depends on x0 only (x1 is a distraction), plus noise uniform in [-1, 1] that no feature sees.
        let y = rows
            .iter()
            .map(|r| 3.0 * r[0] + (rng.unit() - 0.5) * 2.0)
            .collect();
        (Dataset::new(rows), y)
    }

    #[test]
    fn squared_loss_learns_a_function_and_quantiles_bracket_it() {
        let (d, y) = data(2000);
        let params = Params {
            trees: 200,
            colsample: 1.0,
            ..Params::default()
        };
        let mean = Gbt::fit(&d, &y, Loss::Squared, &params);
        let lo = Gbt::fit(&d, &y, Loss::Quantile(0.1), &params);
        let hi = Gbt::fit(&d, &y, Loss::Quantile(0.9), &params);
        let x = [5.0, 0.5];
        assert!(
            (mean.predict(&x) - 15.0).abs() < 0.5,
            "{}",
            mean.predict(&x)
        );
        let (l, h) = (lo.predict(&x), hi.predict(&x));
        assert!((l - 14.2).abs() < 0.5 && (h - 15.8).abs() < 0.5, "{l} {h}");
        let covered = d
            .rows
            .iter()
            .zip(&y)
            .filter(|(r, y)| lo.predict(r) <= **y && **y <= hi.predict(r))
            .count() as f64
            / y.len() as f64;
        assert!((0.7..0.9).contains(&covered), "{covered}");
        // The explanation puts the prediction on x0, and adds up.
        let e = mean.explain(&[9.0, 0.5]);
        assert!(e[0] > 10.0 && e[1].abs() < 1.0, "{e:?}");
        let root: f64 = mean.trees.iter().map(|t| t.value(0)).sum::<f64>() + mean.base;
        assert!((root + e[0] + e[1] - mean.predict(&[9.0, 0.5])).abs() < 1e-9);
    }

    #[test]
    fn an_upper_quantile_of_a_capped_target_still_learns() {
        // Most rows at the cap: a model started at its own 90th percentile (the cap) never moved.
        let (d, y) = data(2000);
        let capped: Vec<f64> = y.iter().map(|v| v.min(12.0)).collect();
        let params = Params {
            trees: 200,
            colsample: 1.0,
            ..Params::default()
        };
        let hi = Gbt::fit(&d, &capped, Loss::Quantile(0.9), &params);
        let at_one = hi.predict(&[1.0, 0.5]);
        assert!((3.0..5.5).contains(&at_one), "{at_one}");
    }

    #[test]
    fn the_same_seed_gives_the_same_model() {
        let (d, y) = data(500);
        let params = Params {
            trees: 20,
            ..Params::default()
        };
        assert_eq!(
            Gbt::fit(&d, &y, Loss::Squared, &params),
            Gbt::fit(&d, &y, Loss::Squared, &params)
        );
    }
}
