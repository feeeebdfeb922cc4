fn main() {
    println!("semisono: under construction");
}
