//! Zero-shot classification counts: cosine similarities of images against each template's class features, then
//! per image the argmax (top-1) and the rank of the true class (top-5).

use super::matmul::matmul_nt_into;
use crate::backend::TemplateCounts;

pub fn score(
    images: &[f32],
    classes: &[f32],
    labels: &[u32],
    templates: usize,
    num_classes: usize,
    dim: usize,
) -> Vec<TemplateCounts> {
    let n = labels.len();
    let mut sims = vec![0.0f32; n * num_classes];
    (0..templates)
        .map(|t| {
            let block = &classes[t * num_classes * dim..(t + 1) * num_classes * dim];
            matmul_nt_into(images, block, n, num_classes, dim, &mut sims, num_classes);
            let mut counts = TemplateCounts { top1: 0, top5: 0, top1_per_class: vec![0; num_classes] };
            for (i, &label) in labels.iter().enumerate() {
                let row = &sims[i * num_classes..(i + 1) * num_classes];
                let truth = row[label as usize];
                // The first maximum wins ties, as torch.argmax does.
                let best = row.iter().enumerate().fold(0, |best, (j, &v)| if v > row[best] { j } else { best });
                if best == label as usize {
                    counts.top1 += 1;
                    counts.top1_per_class[label as usize] += 1;
                }
                let above = row.iter().filter(|&&v| v > truth).count();
                if above < 5 {
                    counts.top5 += 1;
                }
            }
            counts
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_top1_top5_and_per_class() {
        // Two classes along the axes; three images.
        let classes = [1.0, 0.0, 0.0, 1.0];
        let images = [0.9, 0.1, 0.2, 0.8, 0.7, 0.3];
        let counts = score(&images, &classes, &[0, 1, 1], 1, 2, 2);
        assert_eq!(counts[0].top1, 2);
        assert_eq!(counts[0].top1_per_class, vec![1, 1]);
        assert_eq!(counts[0].top5, 3);
    }
}
